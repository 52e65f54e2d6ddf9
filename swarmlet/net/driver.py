"""Docker's network driver and IPAM plugin protocols, as each host's swarmletd answers them.

Every overlay network a host takes part in is also a network of the host's own engine (see
``swarmlet.agent.local_networks``), whose driver and IPAM driver are this plugin. A task's
container is then created on those networks like any container, with the address the
manager gave it, and the engine calls the plugin while it starts the container, before the
task's process runs:

    IpamDriver.RequestPool      the network's subnet (at the engine network's creation)
    IpamDriver.RequestAddress   the gateway, then each endpoint's address: the manager's
    NetworkDriver.CreateEndpoint  a veth pair: one end on the network's bridge, the other in
                                  the engine's namespace, which the engine moves into the
                                  container's and names eth<N>
    NetworkDriver.Join          that end's name; the default route (the host's own address on
                                  the task's first network) and no docker_gwbridge
    NetworkDriver.Leave, DeleteEndpoint, IpamDriver.ReleaseAddress   at the container's stop

So a task is one container: no second one to hold its namespace (docs/dataplane.md). What the
plugin does to the kernel and what it needs to know of the swarm are the ``DriverHost``'s; this
module holds only the protocol and the endpoints the engine made.

Errors are answered as the protocol wants them: ``{"Err": "..."}``, which the engine shows.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from swarmlet.errors import SwarmletError
from swarmlet.net.endpoint import delete_veths
from swarmlet.net.host_ports import PROTOCOLS, HostPort
from swarmlet.net.names import mac_for

log = logging.getLogger(__name__)

Json = dict[str, Any]

# The option (given in the engine network's Options and IPAM Options) naming the swarm network.
NETWORK_OPTION = "com.swarmlet.network.id"
GENERIC = "com.docker.network.generic"
GATEWAY_REQUEST = ("RequestAddressType", "com.docker.network.gateway")
ADDRESS_SPACE = "swarmlet"
# The container's port bindings among ProgramExternalConnectivity's options (netlabel.PortMap).
PORT_MAP = "com.docker.network.portmap"
DELETE_SPACING = 0.02  # seconds between two endpoint deletions (see _delete_endpoint)
# Interface names derived from the engine's endpoint ID (at most 15 characters).
HOST_SIDE = "swlv"
CONTAINER_SIDE = "swlc"


def host_side(endpoint_id: str) -> str:
    """The endpoint's veth on the network's bridge, in the host's namespace."""
    return HOST_SIDE + endpoint_id[:11]


def container_side(endpoint_id: str) -> str:
    """The endpoint's other veth, made in the engine's namespace for it to move."""
    return CONTAINER_SIDE + endpoint_id[:11]


@dataclass(frozen=True)
class Endpoint:
    """An endpoint the engine created on one of our networks."""

    id: str
    network_id: str  # the swarm network's
    address: str  # CIDR
    mac: str

    @property
    def ip(self) -> str:
        return self.address.partition("/")[0]


@dataclass(frozen=True)
class Joined:
    """What the host says of an endpoint joining a container."""

    gateway: str | None  # the default route's next hop, for the container's first network


class DriverHost(Protocol):
    """What the plugin needs of its host (``swarmlet.agent.network.NetworkAgent``)."""

    async def swarm_network(self, engine_network_id: str) -> str:
        """The swarm network behind an engine network of ours (``NotFound`` if none)."""
        ...

    async def make_endpoint(self, endpoint: Endpoint, engine_pid: int) -> None:
        """The veth pair, its container side in the namespace of ``engine_pid``."""
        ...

    async def join(self, endpoint: Endpoint, sandbox_key: str) -> Joined: ...

    async def leave(self, endpoint_id: str) -> None: ...

    async def remove_endpoint(self, endpoint_id: str) -> None: ...

    async def request_address(self, network_id: str, address: str) -> str:
        """An endpoint's address (CIDR) on the swarm network: ``address`` when the manager
        gave it already (a task's), else one the manager allocates (a plain container's)."""
        ...

    async def release_address(self, network_id: str, address: str) -> None: ...

    async def publish(self, endpoint_id: str, ports: Sequence[HostPort]) -> None:
        """Forward this host's ports to the endpoint (a host port 0: one the host chooses)."""
        ...

    async def unpublish(self, endpoint_id: str) -> None: ...


class PluginError(SwarmletError):
    """A request the plugin cannot answer as asked."""


Handler = Callable[[Json, int], Awaitable[Json]]


class NetworkPlugin:
    """The handlers of both protocols. ``handle(path, body, peer_pid)`` answers one request;
    ``peer_pid`` is the engine's (the process at the other end of the plugin's socket)."""

    def __init__(self, host: DriverHost) -> None:
        self._host = host
        self._endpoints: dict[str, Endpoint] = {}
        self._deleting = asyncio.Lock()  # endpoint deletions, one at a time
        self._handlers: Mapping[str, Handler] = {
            "/Plugin.Activate": self._activate,
            "/NetworkDriver.GetCapabilities": self._driver_capabilities,
            "/NetworkDriver.CreateNetwork": self._nothing,
            "/NetworkDriver.DeleteNetwork": self._nothing,
            "/NetworkDriver.CreateEndpoint": self._create_endpoint,
            "/NetworkDriver.DeleteEndpoint": self._delete_endpoint,
            "/NetworkDriver.EndpointOperInfo": self._oper_info,
            "/NetworkDriver.Join": self._join,
            "/NetworkDriver.Leave": self._leave,
            "/NetworkDriver.DiscoverNew": self._nothing,
            "/NetworkDriver.DiscoverDelete": self._nothing,
            "/NetworkDriver.ProgramExternalConnectivity": self._program_ports,
            "/NetworkDriver.RevokeExternalConnectivity": self._revoke_ports,
            "/IpamDriver.GetCapabilities": self._ipam_capabilities,
            "/IpamDriver.GetDefaultAddressSpaces": self._address_spaces,
            "/IpamDriver.RequestPool": self._request_pool,
            "/IpamDriver.ReleasePool": self._nothing,
            "/IpamDriver.RequestAddress": self._request_address,
            "/IpamDriver.ReleaseAddress": self._release_address,
        }

    def knows(self, path: str) -> bool:
        return path in self._handlers

    async def handle(self, path: str, body: Json, peer_pid: int) -> Json:
        try:
            return await self._handlers[path](body, peer_pid)
        except SwarmletError as exc:
            log.warning("network plugin %s: %s", path, exc.message)
            return {"Err": exc.message}

    # -- the driver ---------------------------------------------------------------------------

    async def _activate(self, body: Json, pid: int) -> Json:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    async def _driver_capabilities(self, body: Json, pid: int) -> Json:
        # Local: the engine keeps the network to itself; the swarm is what makes it global.
        # No global ConnectivityScope: the engine would then tell the driver of every node it
        # discovers, at each `docker swarm init` of its own too, and wait 15 s on each plugin
        # of a daemon that is gone (a lab's), which it remembers until it restarts.
        return {"Scope": "local"}

    async def _nothing(self, body: Json, pid: int) -> Json:
        return {}

    async def _create_endpoint(self, body: Json, pid: int) -> Json:
        endpoint_id = _text(body, "EndpointID")
        interface = body.get("Interface") or {}
        address = str(interface.get("Address") or "")
        if not address:
            raise PluginError(f"endpoint {endpoint_id[:12]} has no IPv4 address")
        network_id = await self._host.swarm_network(_text(body, "NetworkID"))
        given_mac = str(interface.get("MacAddress") or "")
        endpoint = Endpoint(endpoint_id, network_id, address, given_mac or mac_for(address))
        await self._host.make_endpoint(endpoint, pid)
        self._endpoints[endpoint_id] = endpoint
        # The engine gave the address; only what it did not give is answered.
        return {"Interface": {} if given_mac else {"MacAddress": endpoint.mac}}

    async def _delete_endpoint(self, body: Json, pid: int) -> Json:
        endpoint_id = _text(body, "EndpointID")
        self._endpoints.pop(endpoint_id, None)
        # One at a time, a little apart: Docker Engine 20.10 miscounts a network's endpoints
        # when many are deleted at once (a service's tasks removed together), and refuses to
        # remove the network ("has active endpoints") until it restarts. On one node, 3 rounds
        # of 50 removals left no count wrong this way where 3 of 3 did without; it makes it
        # rarer, not impossible (docs/benchmarks.md).
        async with self._deleting:
            await self._host.remove_endpoint(endpoint_id)
            await asyncio.sleep(DELETE_SPACING)
        return {}

    async def _oper_info(self, body: Json, pid: int) -> Json:
        return {"Value": {}}

    async def _join(self, body: Json, pid: int) -> Json:
        endpoint_id = _text(body, "EndpointID")
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise PluginError(f"endpoint {endpoint_id[:12]} is not one this host made")
        joined = await self._host.join(endpoint, _text(body, "SandboxKey"))
        answer: Json = {
            "InterfaceName": {"SrcName": container_side(endpoint_id), "DstPrefix": "eth"},
            # The container's way out is its host, never docker_gwbridge.
            "DisableGatewayService": True,
        }
        if joined.gateway:
            answer["Gateway"] = joined.gateway
        return answer

    async def _program_ports(self, body: Json, pid: int) -> Json:
        """A container's port bindings (``mode=host`` ports of a task), handed to the driver
        of the network that gives it its gateway."""
        endpoint_id = _text(body, "EndpointID")
        endpoint = self._endpoints.get(endpoint_id)
        bindings = (body.get("Options") or {}).get(PORT_MAP) or []
        if endpoint is None or not bindings:
            return {}
        ports = [_host_port(binding, endpoint.ip) for binding in bindings]
        await self._host.publish(endpoint_id, ports)
        return {}

    async def _revoke_ports(self, body: Json, pid: int) -> Json:
        await self._host.unpublish(_text(body, "EndpointID"))
        return {}

    async def _leave(self, body: Json, pid: int) -> Json:
        await self._host.leave(_text(body, "EndpointID"))
        return {}

    # -- IPAM ---------------------------------------------------------------------------------

    async def _ipam_capabilities(self, body: Json, pid: int) -> Json:
        return {"RequiresMACAddress": False}

    async def _address_spaces(self, body: Json, pid: int) -> Json:
        return {
            "LocalDefaultAddressSpace": ADDRESS_SPACE,
            "GlobalDefaultAddressSpace": ADDRESS_SPACE,
        }

    async def _request_pool(self, body: Json, pid: int) -> Json:
        pool = str(body.get("Pool") or "")
        network_id = str((body.get("Options") or {}).get(NETWORK_OPTION) or "")
        if not pool or not network_id:
            raise PluginError(
                "a swarmlet network's subnet comes from the swarm: create it with "
                "`docker network create --driver overlay`"
            )
        # The pool's ID names both: the swarm network for the addresses, the subnet for
        # their prefix.
        return {"PoolID": f"{network_id}/{pool}", "Pool": pool, "Data": {}}

    async def _request_address(self, body: Json, pid: int) -> Json:
        network_id, subnet = _pool(body)
        address = str(body.get("Address") or "")
        options = body.get("Options") or {}
        if options.get(GATEWAY_REQUEST[0]) == GATEWAY_REQUEST[1]:
            # Nothing answers on the gateway (tasks route via their host): the swarm's, or the
            # subnet's first address, only for the engine's records.
            chosen = address or str(next(subnet.hosts()))
            return {"Address": f"{chosen}/{subnet.prefixlen}", "Data": {}}
        cidr = await self._host.request_address(
            network_id, f"{address}/{subnet.prefixlen}" if address else ""
        )
        return {"Address": cidr, "Data": {}}

    async def _release_address(self, body: Json, pid: int) -> Json:
        network_id, subnet = _pool(body)
        address = str(body.get("Address") or "")
        if address:
            await self._host.release_address(network_id, f"{address}/{subnet.prefixlen}")
        return {}


def _host_port(binding: Json, address: str) -> HostPort:
    protocol = PROTOCOLS.get(int(binding.get("Proto") or 0))
    if protocol is None:
        raise PluginError(f"cannot publish a port of protocol {binding.get('Proto')}")
    return HostPort(
        protocol=protocol,
        host_port=int(binding.get("HostPort") or 0),
        address=address,
        port=int(binding.get("Port") or 0),
    )


def _text(body: Json, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise PluginError(f"the request has no {key}")
    return value


def _pool(body: Json) -> tuple[str, ipaddress.IPv4Network]:
    network_id, _, pool = _text(body, "PoolID").partition("/")
    try:
        return network_id, ipaddress.IPv4Network(pool)
    except ValueError:
        raise PluginError(f"pool {body.get('PoolID')!r} is not one of swarmlet's") from None


class TeardownHost:
    """The plugin's host while things are only taken down: a node leaving the swarm, a lab
    going away. The engine calls the plugin for every endpoint and network it removes, and
    waits (retrying for 30 s a call) when nobody answers on the socket; this answers those
    calls, deleting the host sides of the veths, and refuses everything else."""

    async def swarm_network(self, engine_network_id: str) -> str:
        raise PluginError("this node is leaving the swarm")

    async def make_endpoint(self, endpoint: Endpoint, engine_pid: int) -> None:
        raise PluginError("this node is leaving the swarm")

    async def join(self, endpoint: Endpoint, sandbox_key: str) -> Joined:
        raise PluginError("this node is leaving the swarm")

    async def leave(self, endpoint_id: str) -> None:
        await delete_veths([host_side(endpoint_id)])

    async def remove_endpoint(self, endpoint_id: str) -> None:
        await self.leave(endpoint_id)

    async def request_address(self, network_id: str, address: str) -> str:
        raise PluginError("this node is leaving the swarm")

    async def release_address(self, network_id: str, address: str) -> None:
        return

    async def publish(self, endpoint_id: str, ports: Sequence[HostPort]) -> None:
        raise PluginError("this node is leaving the swarm")

    async def unpublish(self, endpoint_id: str) -> None:
        return  # the whole table goes with the node's networks
