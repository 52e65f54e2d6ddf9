import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from aiohttp import web

from swarmlet.lab import api
from swarmlet.lab.system import LabError


@pytest.fixture
def socket_dir():
    # Short: a unix socket's path must fit in 108 bytes, and pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="swl-api-", dir="/tmp") as directory:
        yield Path(directory)


class FakeDaemon:
    """Just enough of an engine and a swarmletd for the lab's calls, recording what it got."""

    def __init__(self) -> None:
        self.bodies: dict[str, object] = {}
        lab = "com.swarmlet.lab=swl"
        self.containers = {"c1": lab, "c2": "other=1", "c3": lab}
        self.vanishing = {"c3"}  # removed by someone else between the listing and the DELETE
        self.nodes: list[dict[str, object]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_ping", self.ping)
        app.router.add_post("/swarm/init", self.record)
        app.router.add_post("/swarm/join", self.record)
        app.router.add_get("/swarm", self.swarm)
        app.router.add_get("/nodes", self.list_nodes)
        app.router.add_get("/containers/json", self.list_containers)
        app.router.add_delete("/containers/{id}", self.delete_container)
        app.router.add_get("/broken", self.broken)
        return app

    async def ping(self, _: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def swarm(self, _: web.Request) -> web.Response:
        return web.json_response({"JoinTokens": {"Worker": "W"}})

    async def list_nodes(self, _: web.Request) -> web.Response:
        return web.json_response(self.nodes)

    async def record(self, request: web.Request) -> web.Response:
        self.bodies[request.path] = await request.json()
        return web.json_response("node-id")

    async def list_containers(self, request: web.Request) -> web.Response:
        assert request.query["all"] == "1"
        (label,) = json.loads(request.query["filters"])["label"]
        return web.json_response([{"Id": i} for i, lbl in self.containers.items() if lbl == label])

    async def delete_container(self, request: web.Request) -> web.Response:
        container_id = request.match_info["id"]
        assert request.query["force"] == "1"
        if container_id in self.vanishing:
            return web.json_response({"message": "No such container"}, status=404)
        del self.containers[container_id]
        return web.Response(status=204)

    async def broken(self, _: web.Request) -> web.Response:
        return web.json_response({"message": "it broke"}, status=500)


@pytest.fixture
async def daemon(socket_dir):
    fake = FakeDaemon()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    socket = socket_dir / "docker.sock"
    await web.UnixSite(runner, str(socket)).start()
    fake.docker_host = f"unix://{socket}"
    yield fake
    await runner.cleanup()


async def test_ping_answers_only_where_a_daemon_listens(daemon, socket_dir):
    assert await api.ping(daemon.docker_host)
    assert not await api.ping(f"unix://{socket_dir}/nothing.sock")


async def test_an_error_status_carries_the_daemons_message(daemon):
    with pytest.raises(api.ApiError, match="500 it broke") as caught:
        await api.request(daemon.docker_host, "GET", "/broken")
    assert caught.value.status == 500


async def test_only_unix_sockets_are_spoken_to():
    with pytest.raises(LabError, match="unix sockets only"):
        await api.request("tcp://127.0.0.1:2375", "GET", "/_ping")


async def test_wait_ping_gives_up_when_the_daemon_dies(socket_dir):
    with pytest.raises(LabError, match="exited before it answered"):
        await api.wait_ping(f"unix://{socket_dir}/x.sock", alive=lambda: False, what="it")


async def test_within_names_what_did_not_happen_in_time():
    with pytest.raises(LabError, match=r"nothing came within 0 s"):
        await api.within(0.01, "nothing came", asyncio.sleep(10))


async def test_init_and_join_send_the_documented_bodies(daemon):
    await api.swarm_init(daemon.docker_host, "192.168.254.11:2377", "192.168.254.11")
    token = await api.worker_token(daemon.docker_host)
    await api.swarm_join(
        daemon.docker_host, "192.168.254.11:2377", token, "192.168.254.12:2377", "192.168.254.12"
    )

    assert daemon.bodies == {
        "/swarm/init": {"ListenAddr": "192.168.254.11:2377", "AdvertiseAddr": "192.168.254.11"},
        "/swarm/join": {
            "RemoteAddrs": ["192.168.254.11:2377"],
            "JoinToken": "W",
            "ListenAddr": "192.168.254.12:2377",
            "AdvertiseAddr": "192.168.254.12",
        },
    }


async def test_nodes_are_ready_when_all_are_there_and_ready(daemon):
    daemon.nodes = [{"Status": {"State": "ready"}}, {"Status": {"State": "down"}}]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await api.wait_nodes_ready(daemon.docker_host, 2)

    daemon.nodes[1] = {"Status": {"State": "ready"}}
    await api.wait_nodes_ready(daemon.docker_host, 2)
    assert await api.node_states(daemon.docker_host) == ["ready", "ready"]


async def test_labelled_containers_are_removed_and_others_kept(daemon):
    removed = await api.remove_labelled_containers(daemon.docker_host, "com.swarmlet.lab=swl")

    assert removed == ["c1", "c3"]
    assert set(daemon.containers) == {"c2", "c3"}


async def test_run_sync_works_inside_a_running_event_loop():
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert api.run_sync(answer()) == 42


def test_run_sync_works_without_an_event_loop():
    assert api.run_sync(asyncio.sleep(0, result="done")) == "done"
