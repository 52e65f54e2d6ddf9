"""/swarm/init, /swarm/join and /swarm/leave: the node's own verbs, done by the daemon's control
(never the store, never forwarded), and the checks of an init's spec that an update of the
swarm (``swarmlet.manager.api.swarm``) makes too."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import Field

from swarmlet.api.autolock import apply_autolock
from swarmlet.api.common import (
    LOCKED_LEAVE,
    bool_query,
    control_of,
    json_response,
    min_cert_expiry_of,
    read_json_object,
)
from swarmlet.api.control import InitRequest, JoinRequest, LocalNodeState
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.models import DEFAULT_POOLS, DEFAULT_SUBNET_SIZE, ClusterSpec, Model
from swarmlet.net.names import VXLAN_PORT

_DEFAULT_LISTEN_ADDR = "0.0.0.0:2377"
# moby's limit: a /29 leaves 8 addresses, of which libnetwork uses 4.
_MAX_SUBNET_SIZE = 29


class InitBody(Model):
    listen_addr: str = ""
    advertise_addr: str = ""
    force_new_cluster: bool = False
    spec: dict[str, Any] | None = None
    default_addr_pool: list[str] | None = None
    subnet_size: int = 0
    data_path_port: int = 0
    data_path_addr: str = ""


class JoinBody(Model):
    remote_addrs: list[str] = Field(default_factory=list)
    join_token: str = ""
    listen_addr: str = ""
    advertise_addr: str = ""
    data_path_addr: str = ""


def check_ca_config(spec: ClusterSpec, minimum: timedelta) -> None:
    """Refuse what swarmlet's CA cannot do, in Swarm's words where Swarm has them."""
    ca_config = spec.ca_config
    if timedelta(microseconds=ca_config.node_cert_expiry / 1000) < minimum:
        raise InvalidSpec(f"minimum certificate expiry time is: {go_duration(minimum)}")
    if ca_config.signing_ca_cert or ca_config.signing_ca_key:
        raise InvalidSpec(
            "a root CA given with --ca-cert/--ca-key is not supported: swarmlet makes its own"
            " roots (`docker swarm ca --rotate` without them)"
        )
    if ca_config.external_cas:
        raise InvalidSpec("external CAs are not supported: swarmlet signs with its own root")


def address_pools(pools: list[str] | None, subnet_size: int) -> tuple[list[str], int]:
    """The swarm's default address pools and subnet size, as moby's validateDefaultAddrPool
    checks them: none given is 10.0.0.0/8, a size of 0 is 24."""
    size = subnet_size or DEFAULT_SUBNET_SIZE
    if not pools:
        return list(DEFAULT_POOLS), size
    if not 0 < size <= _MAX_SUBNET_SIZE:
        raise InvalidSpec(f"subnet size is out of range: {subnet_size}")
    checked = []
    for pool in (pool.strip() for pool in pools):
        try:
            network = ipaddress.ip_network(pool, strict=False)
        except ValueError:
            raise InvalidSpec(f"invalid base pool {pool}: invalid CIDR address: {pool}") from None
        if network.version != 4:
            raise InvalidSpec(f"invalid base pool {pool}: only IPv4 pools are supported")
        if size < network.prefixlen:
            raise InvalidSpec(f"invalid CIDR: {pool!r}. Subnet size is too small for pool: {size}")
        checked.append(str(network))
    return checked, size


def data_path_port(port: int) -> int:
    """The VXLAN UDP port, as moby's getDataPathPort checks it: 0 is 4789, otherwise a
    registered port (1024-49151)."""
    if port == 0:
        return VXLAN_PORT
    if not 1024 <= port <= 49151:
        raise InvalidSpec(f"Datapath port number is not in valid range (1024-49151) : {port}")
    return port


def go_duration(value: timedelta) -> str:
    """A whole number of seconds as Go prints a time.Duration (``1h0m0s``, ``1m30s``, ``10s``)."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


async def init(request: web.Request) -> web.Response:
    body = InitBody.from_api(await read_json_object(request))
    spec = body.spec or {}
    cluster_spec = ClusterSpec.from_api(spec)  # refuse a malformed spec here, naming the field
    check_ca_config(cluster_spec, min_cert_expiry_of(request))
    pools, subnet_size = address_pools(body.default_addr_pool, body.subnet_size)
    given_pools = tuple(pools) if body.default_addr_pool else ()
    control = control_of(request)
    node_id = await control.init(
        InitRequest(
            listen_addr=body.listen_addr or _DEFAULT_LISTEN_ADDR,
            advertise_addr=body.advertise_addr,
            force_new_cluster=body.force_new_cluster,
            spec=spec,
            default_addr_pool=given_pools,
            subnet_size=subnet_size,
            data_path_port=data_path_port(body.data_path_port),
            data_path_addr=body.data_path_addr,
        )
    )
    await apply_autolock(control, cluster_spec, rotate=False)  # `swarm init --autolock`
    return json_response(node_id)


async def join(request: web.Request) -> web.Response:
    body = JoinBody.from_api(await read_json_object(request))
    await control_of(request).join(
        JoinRequest(
            remote_addrs=tuple(body.remote_addrs),
            join_token=body.join_token,
            listen_addr=body.listen_addr or _DEFAULT_LISTEN_ADDR,
            advertise_addr=body.advertise_addr,
            data_path_addr=body.data_path_addr,
        )
    )
    return web.Response()


async def leave(request: web.Request) -> web.Response:
    control = control_of(request)
    force = bool_query(request, "force")
    if control.state is LocalNodeState.LOCKED and not force:
        raise Unavailable(LOCKED_LEAVE)
    await control.leave(force)
    return web.Response()
