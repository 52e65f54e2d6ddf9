"""Forwarding over the leader's port, with real certificates on loopback TLS: what the leader
admits (managers only), how it answers (as seen from the forwarding node), and a follower's API
built on it (the cluster's requests forwarded, its engine's own parts local)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from swarmlet.agent.certificates import CertificateRenewer
from swarmlet.api import make_app
from swarmlet.api.common import WORKER
from swarmlet.api.control import LeaderRoute, LocalNodeState
from swarmlet.errors import NO_LEADER
from swarmlet.manager.api.forwarded import forwarded_app
from swarmlet.manager.api.leader import FORWARDED_PREFIX
from swarmlet.manager.store import Op
from swarmlet.models import (
    ManagerStatus,
    Network,
    Node,
    NodeDescription,
    NodeRole,
    NodeState,
    NodeStatus,
)
from swarmlet.pki import Credentials
from swarmlet.pki.tls import MANAGER_NAME, client_context
from tests.manager.api.fakes import FakeControl
from tests.manager.dispatcher.loopback import Manager, free_port

FOLLOWER_ADDR = "127.0.0.2"


@pytest.fixture
def leader_control() -> FakeControl:
    return FakeControl()


@pytest.fixture
async def leader(tmp_path: Path, leader_control: FakeControl) -> AsyncIterator[Manager]:
    """A leader: the store, the CA, and the forwarded Engine API mounted on its port."""
    manager = await Manager.create(tmp_path)
    m1 = manager.store.get(Node, "m1")
    await manager.store.commit(
        [
            Op.update(
                m1.replace(
                    description=NodeDescription(hostname="leader"),
                    status=NodeStatus(state=NodeState.READY, addr="127.0.0.1"),
                    manager_status=ManagerStatus(leader=True, addr="127.0.0.1:2377"),
                )
            )
        ]
    )
    control = leader_control
    control.state = LocalNodeState.ACTIVE
    control.node_id, control.node_addr = "m1", "127.0.0.1"
    control.store, control.clock = manager.store, manager.clock
    control.manager_addrs = [manager.addr]
    manager.api = forwarded_app(control, manager.clock)
    await manager.start()
    yield manager
    await manager.stop()


async def joined(manager: Manager, folder: Path) -> tuple[str, Credentials]:
    """A worker with its certificate, its agent's address recorded as a session would."""
    credentials = Credentials(folder)
    node_id = await manager.join_worker(credentials)
    node = manager.store.get(Node, node_id)
    status = NodeStatus(state=NodeState.READY, addr=FOLLOWER_ADDR)
    await manager.store.commit([Op.update(node.replace(status=status))])
    return node_id, credentials


async def set_role(manager: Manager, node_id: str, role: NodeRole) -> None:
    node = manager.store.get(Node, node_id)
    await manager.store.commit([Op.update(node.replace(spec=node.spec.replace(role=role)))])


async def promoted(manager: Manager, folder: Path) -> tuple[str, Credentials]:
    """`docker node promote`, then the renewal the dispatcher asks for: a manager certificate."""
    node_id, credentials = await joined(manager, folder)
    await set_role(manager, node_id, NodeRole.MANAGER)
    await CertificateRenewer(credentials, [manager.addr], manager.clock).renew()
    assert credentials.certificate().role is NodeRole.MANAGER
    return node_id, credentials


async def forward(
    manager: Manager, credentials: Credentials | None, method: str, path: str
) -> tuple[int, Any]:
    """A request to the leader's forwarded API, as a follower sends it."""
    tls = client_context(manager.credentials.trust(), credentials)
    url = f"https://{manager.addr}{FORWARDED_PREFIX}{path}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, ssl=tls, server_hostname=MANAGER_NAME) as response,
    ):
        return response.status, await response.json(content_type=None)


# The leader's side


async def test_a_forwarded_request_is_answered_as_seen_from_the_forwarding_manager(
    leader: Manager, tmp_path: Path
) -> None:
    node_id, credentials = await promoted(leader, tmp_path / "n2")
    status, info = await forward(leader, credentials, "GET", "/v1.47/info")
    assert status == 200
    # The Swarm section alone: the rest of /info is the follower's own engine's.
    assert list(info) == ["Swarm"]
    swarm = info["Swarm"]
    assert (swarm["NodeID"], swarm["NodeAddr"]) == (node_id, FOLLOWER_ADDR)
    assert (swarm["ControlAvailable"], swarm["Nodes"], swarm["Managers"]) == (True, 2, 2)
    status, node = await forward(leader, credentials, "GET", "/v1.47/nodes/self")
    assert (status, node["ID"]) == (200, node_id)
    assert node["ManagerStatus"] == {
        "Leader": False,
        "Reachability": "reachable",
        "Addr": f"{FOLLOWER_ADDR}:2377",
    }


async def test_a_worker_certificate_is_refused(leader: Manager, tmp_path: Path) -> None:
    node_id, credentials = await joined(leader, tmp_path / "n2")
    status, body = await forward(leader, credentials, "GET", "/v1.47/nodes")
    assert (status, body) == (403, {"message": f"node {node_id} is not a manager of this swarm"})


async def test_a_demoted_nodes_manager_certificate_is_refused(
    leader: Manager, tmp_path: Path
) -> None:
    node_id, credentials = await promoted(leader, tmp_path / "n2")
    await set_role(leader, node_id, NodeRole.WORKER)  # demoted; its renewal has not happened yet
    status, body = await forward(leader, credentials, "GET", "/v1.47/nodes")
    assert (status, body) == (403, {"message": f"node {node_id} is not a manager of this swarm"})


async def test_a_request_without_a_certificate_is_refused(leader: Manager) -> None:
    status, body = await forward(leader, None, "GET", "/v1.47/nodes")
    assert (status, body) == (403, {"message": "a manager certificate is required"})


async def test_a_removed_nodes_certificate_is_refused(leader: Manager, tmp_path: Path) -> None:
    node_id, credentials = await promoted(leader, tmp_path / "n2")
    await leader.store.commit([Op.delete(leader.store.get(Node, node_id))])
    status, body = await forward(leader, credentials, "GET", "/v1.47/nodes")
    assert status == 403
    assert body == {"message": f"node {node_id} is not a member of this swarm"}


async def test_what_changes_a_node_and_the_leaders_engine_are_out_of_reach(
    leader: Manager, leader_control: FakeControl, tmp_path: Path
) -> None:
    _, credentials = await promoted(leader, tmp_path / "n2")
    status, _ = await forward(leader, credentials, "POST", "/v1.47/swarm/leave?force=1")
    assert status == 400
    assert leader_control.leaves == []
    status, _ = await forward(leader, credentials, "GET", "/v1.47/containers/json")
    assert status == 404


# A follower's API


async def _fake_engine(request: web.Request) -> web.StreamResponse:
    """The follower's own engine, answering what the follower asks it at its version."""
    path = request.path
    if path == "/_ping":
        return web.Response(text="OK", headers={"Api-Version": "1.41"})
    if path == "/v1.41/info":
        return web.json_response({"Name": "follower-engine", "Containers": 7})
    if path == "/v1.41/networks":
        return web.json_response([{"Name": "bridge", "Id": "b" * 64, "Scope": "local"}])
    if path == "/v1.41/networks/bridge":
        return web.json_response({"Name": "bridge", "Id": "b" * 64, "Scope": "local"})
    return web.json_response({"message": f"no such object: {path}"}, status=404)


@pytest.fixture
def engine_socket() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="swl-") as folder:
        yield os.path.join(folder, "engine.sock")


@pytest.fixture
async def engine(engine_socket: str) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _fake_engine)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, engine_socket).start()
    yield engine_socket
    await runner.cleanup()


@asynccontextmanager
async def follower_client(
    control: FakeControl, manager: Manager
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app(control, manager.clock))) as client:
        yield client
    await control.close()


def follower_control(
    node_id: str, engine: str, addrs: tuple[str, ...], credentials: Credentials
) -> FakeControl:
    tls = client_context(credentials.trust(), credentials)
    return FakeControl(
        state=LocalNodeState.ACTIVE,
        node_id=node_id,
        node_addr=FOLLOWER_ADDR,
        leader=LeaderRoute(addrs=addrs, tls=tls),
        manager_addrs=list(addrs),
        engine_socket=engine,
    )


async def test_a_follower_answers_the_clusters_requests_through_the_leader(
    leader: Manager, engine: str, tmp_path: Path
) -> None:
    node_id, credentials = await promoted(leader, tmp_path / "n2")
    control = follower_control(node_id, engine, (leader.addr,), credentials)
    async with follower_client(control, leader) as client:
        ping = await client.get("/_ping")
        assert ping.headers["Swarm"] == "active/manager"
        nodes = await client.get("/v1.47/nodes")
        assert nodes.status == 200
        assert sorted(node["ID"] for node in await nodes.json()) == sorted(["m1", node_id])
        info = await (await client.get("/v1.47/info")).json()
        assert (info["Name"], info["Containers"]) == ("follower-engine", 7)
        assert (info["Swarm"]["NodeID"], info["Swarm"]["ControlAvailable"]) == (node_id, True)
        # What is created through the follower is in the leader's store.
        created = await client.post(
            "/v1.47/networks/create", json={"Name": "backend", "Driver": "overlay"}
        )
        assert created.status == 201, await created.text()
        assert [n.name for n in leader.store.all(Network)] == ["backend"]
        listed = await (await client.get("/v1.47/networks")).json()
        assert [n["Name"] for n in listed] == ["bridge", "backend"]
        bridge = await client.get("/v1.47/networks/bridge")
        assert (bridge.status, (await bridge.json())["Scope"]) == (200, "local")
        backend = await client.get("/v1.47/networks/backend")
        assert (backend.status, (await backend.json())["Scope"]) == (200, "swarm")
        # Leaving is the follower's own verb: its control does it, nothing is forwarded.
        left = await client.post("/v1.47/swarm/leave")
        assert left.status == 200
        assert control.leaves == [False]


async def test_a_follower_without_its_leader_says_so(
    leader: Manager, engine: str, tmp_path: Path
) -> None:
    node_id, credentials = await promoted(leader, tmp_path / "n2")
    nowhere = f"127.0.0.1:{free_port()}"
    control = follower_control(node_id, engine, (nowhere,), credentials)
    async with follower_client(control, leader) as client:
        nodes = await client.get("/v1.47/nodes")
        assert nodes.status == 503
        assert (await nodes.json())["message"].startswith(NO_LEADER)
        info = await (await client.get("/v1.47/info")).json()
        assert info["Name"] == "follower-engine"
        swarm = info["Swarm"]
        assert (swarm["NodeID"], swarm["ControlAvailable"]) == (node_id, True)
        assert swarm["Error"].startswith(NO_LEADER)


async def test_a_worker_forwards_nothing(leader: Manager, engine: str) -> None:
    control = FakeControl(state=LocalNodeState.ACTIVE, node_id="w1", engine_socket=engine)
    async with follower_client(control, leader) as client:
        assert (await client.get("/_ping")).headers["Swarm"] == "active/worker"
        nodes = await client.get("/v1.47/nodes")
        assert (nodes.status, await nodes.json()) == (503, {"message": WORKER})
