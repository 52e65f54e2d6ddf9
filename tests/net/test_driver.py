"""The network and IPAM plugin protocols (``swarmlet.net.driver``) against a fake host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from swarmlet.errors import NotFound
from swarmlet.net.driver import (
    NETWORK_OPTION,
    Endpoint,
    Joined,
    NetworkPlugin,
    container_side,
    host_side,
)
from swarmlet.net.host_ports import HostPort

ENGINE_NET = "e" * 64
EID = "abcdef0123456789" * 4


@dataclass
class FakeHost:
    calls: list[tuple[object, ...]] = field(default_factory=list)
    gateway: str | None = "10.0.1.3"

    async def swarm_network(self, engine_network_id: str) -> str:
        if engine_network_id != ENGINE_NET:
            raise NotFound(f"engine network {engine_network_id[:12]} is not one of swarmlet's")
        return "swarmnet"

    async def make_endpoint(self, endpoint: Endpoint, engine_pid: int) -> None:
        self.calls.append(("make", endpoint, engine_pid))

    async def join(self, endpoint: Endpoint, sandbox_key: str) -> Joined:
        self.calls.append(("join", endpoint.id, sandbox_key))
        return Joined(gateway=self.gateway)

    async def leave(self, endpoint_id: str) -> None:
        self.calls.append(("leave", endpoint_id))

    async def remove_endpoint(self, endpoint_id: str) -> None:
        self.calls.append(("remove", endpoint_id))

    async def request_address(self, network_id: str, address: str) -> str:
        self.calls.append(("request", network_id, address))
        return address or "10.0.1.9/24"

    async def release_address(self, network_id: str, address: str) -> None:
        self.calls.append(("release", network_id, address))

    async def publish(self, endpoint_id: str, ports: Sequence[HostPort]) -> None:
        self.calls.append(("publish", endpoint_id, list(ports)))

    async def unpublish(self, endpoint_id: str) -> None:
        self.calls.append(("unpublish", endpoint_id))


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def plugin(host: FakeHost) -> NetworkPlugin:
    return NetworkPlugin(host)


async def test_it_is_both_a_network_driver_and_an_ipam_driver(plugin):
    assert await plugin.handle("/Plugin.Activate", {}, 1) == {
        "Implements": ["NetworkDriver", "IpamDriver"]
    }
    capabilities = await plugin.handle("/NetworkDriver.GetCapabilities", {}, 1)
    assert capabilities["Scope"] == "local"


async def test_a_pool_is_the_swarm_networks_subnet_and_nothing_else(plugin):
    pool = {"Pool": "10.0.1.0/24", "Options": {NETWORK_OPTION: "swarmnet"}}
    assert await plugin.handle("/IpamDriver.RequestPool", pool, 1) == {
        "PoolID": "swarmnet/10.0.1.0/24",
        "Pool": "10.0.1.0/24",
        "Data": {},
    }
    # `docker network create -d swarmlet` by hand: no subnet of the swarm's.
    refused = await plugin.handle("/IpamDriver.RequestPool", {"Pool": ""}, 1)
    assert "docker network create --driver overlay" in refused["Err"]


async def test_addresses_come_from_the_host_and_the_gateway_is_only_recorded(plugin, host):
    pool_id = "swarmnet/10.0.1.0/24"
    gateway = {
        "PoolID": pool_id,
        "Options": {"RequestAddressType": "com.docker.network.gateway"},
    }
    answer = await plugin.handle("/IpamDriver.RequestAddress", gateway, 1)
    assert answer["Address"] == "10.0.1.1/24"
    assert host.calls == []  # nothing of the swarm's is asked for the gateway

    given = {"PoolID": pool_id, "Address": "10.0.1.5"}
    assert (await plugin.handle("/IpamDriver.RequestAddress", given, 1))["Address"] == "10.0.1.5/24"
    assert (await plugin.handle("/IpamDriver.RequestAddress", {"PoolID": pool_id}, 1))[
        "Address"
    ] == "10.0.1.9/24"
    await plugin.handle("/IpamDriver.ReleaseAddress", given, 1)
    assert host.calls == [
        ("request", "swarmnet", "10.0.1.5/24"),
        ("request", "swarmnet", ""),
        ("release", "swarmnet", "10.0.1.5/24"),
    ]
    junk = await plugin.handle("/IpamDriver.RequestAddress", {"PoolID": "x/notapool"}, 1)
    assert "not one of swarmlet's" in junk["Err"]


async def test_an_endpoint_is_a_veth_made_in_the_engines_namespace_then_joined(plugin, host):
    create = {
        "NetworkID": ENGINE_NET,
        "EndpointID": EID,
        "Interface": {"Address": "10.0.1.5/24", "MacAddress": ""},
    }
    answer = await plugin.handle("/NetworkDriver.CreateEndpoint", create, 4242)
    # The MAC is the address's, as every host derives it.
    assert answer == {"Interface": {"MacAddress": "02:42:0a:00:01:05"}}
    endpoint = Endpoint(EID, "swarmnet", "10.0.1.5/24", "02:42:0a:00:01:05")
    assert host.calls == [("make", endpoint, 4242)]

    join = {"NetworkID": ENGINE_NET, "EndpointID": EID, "SandboxKey": "/var/run/docker/netns/x"}
    joined = await plugin.handle("/NetworkDriver.Join", join, 4242)
    assert joined == {
        "InterfaceName": {"SrcName": container_side(EID), "DstPrefix": "eth"},
        "DisableGatewayService": True,
        "Gateway": "10.0.1.3",
    }
    assert len(container_side(EID)) <= 15
    assert len(host_side(EID)) <= 15

    await plugin.handle("/NetworkDriver.Leave", {"NetworkID": ENGINE_NET, "EndpointID": EID}, 1)
    await plugin.handle(
        "/NetworkDriver.DeleteEndpoint", {"NetworkID": ENGINE_NET, "EndpointID": EID}, 1
    )
    assert host.calls[-2:] == [("leave", EID), ("remove", EID)]


async def test_a_network_that_is_not_the_first_gives_no_gateway(plugin, host):
    host.gateway = None
    create = {"NetworkID": ENGINE_NET, "EndpointID": EID, "Interface": {"Address": "10.0.1.5/24"}}
    await plugin.handle("/NetworkDriver.CreateEndpoint", create, 1)
    joined = await plugin.handle(
        "/NetworkDriver.Join", {"NetworkID": ENGINE_NET, "EndpointID": EID, "SandboxKey": "k"}, 1
    )
    assert "Gateway" not in joined
    assert joined["DisableGatewayService"] is True


async def test_what_the_host_refuses_is_answered_as_the_protocol_wants(plugin):
    create = {"NetworkID": "f" * 64, "EndpointID": EID, "Interface": {"Address": "10.0.1.5/24"}}
    answer = await plugin.handle("/NetworkDriver.CreateEndpoint", create, 1)
    assert answer == {"Err": "engine network ffffffffffff is not one of swarmlet's"}
    unknown = await plugin.handle(
        "/NetworkDriver.Join", {"EndpointID": "x" * 64, "SandboxKey": "k"}, 1
    )
    assert "is not one this host made" in unknown["Err"]
    missing = await plugin.handle("/NetworkDriver.CreateEndpoint", {"EndpointID": EID}, 1)
    assert "has no IPv4 address" in missing["Err"]


async def test_endpoints_are_deleted_one_at_a_time(plugin, host):
    import asyncio

    busy: list[int] = [0]
    most: list[int] = [0]

    async def remove_endpoint(endpoint_id: str) -> None:
        busy[0] += 1
        most[0] = max(most[0], busy[0])
        await asyncio.sleep(0.01)
        busy[0] -= 1

    host.remove_endpoint = remove_endpoint
    deletes = [
        plugin.handle("/NetworkDriver.DeleteEndpoint", {"EndpointID": f"{i:064d}"}, 1)
        for i in range(5)
    ]
    assert await asyncio.gather(*deletes) == [{}] * 5
    assert most[0] == 1


async def test_a_containers_port_bindings_are_forwarded_to_its_endpoint(plugin, host):
    create = {"NetworkID": ENGINE_NET, "EndpointID": EID, "Interface": {"Address": "10.0.1.5/24"}}
    await plugin.handle("/NetworkDriver.CreateEndpoint", create, 4242)
    # As the engine sends them: the sandbox's labels, with libnetwork's protocol numbers.
    options = {
        "com.docker.network.portmap": [
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "", "HostPort": 0, "HostPortEnd": 0},
        ],
        "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
    }
    body = {"NetworkID": ENGINE_NET, "EndpointID": EID, "Options": options}
    assert await plugin.handle("/NetworkDriver.ProgramExternalConnectivity", body, 1) == {}
    assert host.calls[-1] == (
        "publish",
        EID,
        [HostPort("tcp", 8080, "10.0.1.5", 80), HostPort("udp", 0, "10.0.1.5", 53)],
    )
    # A container with no bindings publishes nothing.
    body = {"NetworkID": ENGINE_NET, "EndpointID": EID, "Options": {}}
    await plugin.handle("/NetworkDriver.ProgramExternalConnectivity", body, 1)
    assert host.calls[-1][0] == "publish"
    body = {"NetworkID": ENGINE_NET, "EndpointID": EID}
    assert await plugin.handle("/NetworkDriver.RevokeExternalConnectivity", body, 1) == {}
    assert host.calls[-1] == ("unpublish", EID)
