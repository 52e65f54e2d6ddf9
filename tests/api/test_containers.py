"""Containers created on the swarm's networks through the API (``swarmlet.api.containers``),
on a worker: the request is rewritten for the engine with the manager's address, against the
real engine; the host's side is a fake that stands a bridge network of the engine's in for the
engine's copy of the swarm network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestClient, TestServer

from swarmlet.agent.engine import EngineClient
from swarmlet.api import make_app
from swarmlet.api.containers import ATTACHMENT_KEY_LABEL
from swarmlet.errors import Forbidden, NotFound
from swarmlet.ids import new_id
from tests.api.fakes import require_engine

IMAGE = "swarmlet-test/busybox:latest"
SUBNET = "10.231.7.0/24"


@dataclass(frozen=True)
class Place:
    network_id: str
    local_network: str
    address: str
    nameserver: str


@dataclass
class FakeAttacher:
    local_network: str
    attached: list[tuple[str, str, str, tuple[str, ...]]] = field(default_factory=list)
    detached: list[tuple[set[str], str | None]] = field(default_factory=list)

    async def attach_container(
        self, network: str, key: str, name: str, aliases: Sequence[str]
    ) -> Place:
        if network == "closed":
            raise Forbidden("network closed not manually attachable")
        if network != "dc":
            raise NotFound(f"network {network} not found")
        self.attached.append((network, key, name, tuple(aliases)))
        return Place("dc-id", self.local_network, "10.231.7.7/24", "10.231.7.2")

    async def detach_containers(self, keys: Iterable[str], network_id: str | None = None) -> None:
        self.detached.append((set(keys), network_id))

    def local_network(self, ref: str) -> tuple[str, str] | None:
        return (self.local_network, "dc-id") if ref in ("dc", "dc-id") else None


@pytest.fixture
async def engine() -> AsyncIterator[EngineClient]:
    require_engine()
    async with EngineClient() as engine:
        yield engine


@pytest.fixture
async def bridge(engine: EngineClient) -> AsyncIterator[str]:
    name = f"swlt-attach-{new_id()[:8]}"
    network_id = await engine.create_network(
        {"Name": name, "Driver": "bridge", "IPAM": {"Config": [{"Subnet": SUBNET}]}}
    )
    try:
        yield name
    finally:
        for container in await engine.list_containers({"swarmlet-test": name}):
            await engine.remove_container(container.id)
        await engine.remove_network(network_id)


@pytest.fixture
async def attached(control, clock, bridge) -> AsyncIterator[tuple[TestClient, FakeAttacher]]:
    attacher = FakeAttacher(bridge)
    app = make_app(control, clock, attacher=lambda: attacher)
    async with TestClient(TestServer(app)) as client:
        yield client, attacher


async def create(client: TestClient, bridge: str, name: str, **config: object):
    body = {"Image": IMAGE, "Labels": {"swarmlet-test": bridge}, "Cmd": ["sleep", "5"], **config}
    return await client.post(f"/v1.41/containers/create?name={name}", json=body)


async def test_a_container_on_a_swarm_network_gets_the_managers_address(attached, engine, bridge):
    client, attacher = attached
    name = f"swlt-{new_id()[:8]}"
    answer = await create(
        client,
        bridge,
        name,
        HostConfig={"NetworkMode": "dc"},
        NetworkingConfig={"EndpointsConfig": {"dc": {"Aliases": ["prb"]}}},
    )
    assert answer.status == 201, await answer.text()
    [(network, key, asked_name, aliases)] = attacher.attached
    assert (network, asked_name, aliases) == ("dc", name, ("prb",))

    inspected = await engine._json("GET", f"/containers/{name}/json")
    assert inspected["HostConfig"]["NetworkMode"] == bridge
    assert inspected["HostConfig"]["Dns"] == ["10.231.7.2"]
    assert inspected["Config"]["Labels"][ATTACHMENT_KEY_LABEL] == key
    endpoint = inspected["NetworkSettings"]["Networks"][bridge]
    assert endpoint["IPAMConfig"] == {"IPv4Address": "10.231.7.7"}
    assert endpoint["Aliases"] == ["prb"]


async def test_a_network_that_is_not_attachable_is_refused_with_swarms_words(attached, engine):
    client, attacher = attached
    name = f"swlt-{new_id()[:8]}"
    answer = await create(client, "x", name, HostConfig={"NetworkMode": "closed"})
    assert answer.status == 403
    assert (await answer.json())["message"] == (
        "Could not attach to network closed: rpc error: code = PermissionDenied "
        "desc = network closed not manually attachable"
    )
    unknown = await create(client, "x", name, HostConfig={"NetworkMode": "nowhere"})
    assert unknown.status == 404
    assert (await unknown.json())["message"] == "network nowhere not found"
    # Nothing was made.
    missing = await client.get(f"/v1.41/containers/{name}/json")
    assert missing.status == 404
    assert attacher.attached == []


async def test_what_the_engine_refuses_gives_the_address_back(attached, bridge):
    client, attacher = attached
    answer = await create(
        client, bridge, f"swlt-{new_id()[:8]}", Image="swarmlet-test/no-such-image:1",
        HostConfig={"NetworkMode": "dc"},
    )  # fmt: skip
    assert answer.status == 404
    [(_, key, _, _)] = attacher.attached
    assert attacher.detached == [({key}, None)]


async def test_the_engines_own_networks_pass_through_untouched(attached, engine, bridge):
    client, attacher = attached
    name = f"swlt-{new_id()[:8]}"
    answer = await create(client, bridge, name, HostConfig={"NetworkMode": bridge})
    assert answer.status == 201
    # The CLI names the default network in EndpointsConfig too: never a swarm network.
    default = f"swlt-{new_id()[:8]}"
    answer = await create(
        client, bridge, default, NetworkingConfig={"EndpointsConfig": {"bridge": {}}}
    )
    assert answer.status == 201, await answer.text()
    assert attacher.attached == []
    inspected = await engine._json("GET", f"/containers/{name}/json")
    assert ATTACHMENT_KEY_LABEL not in inspected["Config"]["Labels"]


async def test_without_a_swarm_every_request_goes_through(control, clock, bridge, engine):
    require_engine()
    async with TestClient(TestServer(make_app(control, clock, attacher=lambda: None))) as client:
        name = f"swlt-{new_id()[:8]}"
        answer = await create(client, bridge, name, HostConfig={"NetworkMode": "dc"})
        # As it came: the engine takes it, and would fail it at start.
        assert answer.status == 201
        inspected = await engine._json("GET", f"/containers/{name}/json")
        assert inspected["HostConfig"]["NetworkMode"] == "dc"
        assert ATTACHMENT_KEY_LABEL not in inspected["Config"]["Labels"]
