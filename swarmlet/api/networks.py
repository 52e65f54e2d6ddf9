"""/networks as the engine answers it: a node's local networks, on every node.

A node that holds no cluster state passes every network request to its engine, except the
creation of an overlay network (the swarm's: refused there, as Swarm refuses it). A manager
answers the swarm's networks from the store (``swarmlet.manager.api.networks``) and lists the
engine's beside them; here are the parts both use: the create request, the engine's networks
without its copies of the swarm's, and a local network's creation.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from pydantic import Field

from swarmlet.api.common import forwarded, read_json_object
from swarmlet.api.proxy import ENGINE
from swarmlet.errors import EngineError, InvalidSpec, SwarmletError
from swarmlet.models import OVERLAY, Model, NetworkIPAM
from swarmlet.net.driver import NETWORK_OPTION

SWARM_SCOPE = "swarm"


class NetworkCreateRequest(Model):
    """The body of POST /networks/create, as the Engine API defines it."""

    name: str = ""
    driver: str = ""
    scope: str = ""
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    config_only: bool = False
    config_from: dict[str, Any] | None = None
    enable_ipv4: bool | None = Field(default=None, alias="EnableIPv4")
    enable_ipv6: bool = False
    ipam: NetworkIPAM | None = None
    options: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    check_duplicate: bool | None = None


def engine_networks(listed: object) -> list[Any]:
    """The engine's own networks from its list, without its copies of the swarm's (made for
    the network plugin, ``swarmlet.agent.local_networks``): the swarm's are listed as such."""
    if not isinstance(listed, list):
        return []
    return [
        network
        for network in listed
        if not (isinstance(network, dict) and NETWORK_OPTION in (network.get("Options") or {}))
    ]


async def create_network(request: web.Request, overlay: SwarmletError) -> web.StreamResponse:
    """POST /networks/create on a node that cannot make a swarm network: a local one is the
    engine's; an overlay one is refused with ``overlay``."""
    create = NetworkCreateRequest.from_api(await read_json_object(request))
    if create.driver == OVERLAY:
        raise overlay
    return await create_local(request, create)


async def create_local(request: web.Request, create: NetworkCreateRequest) -> web.StreamResponse:
    """A network of another driver than overlay: the engine's (a local network)."""
    if create.scope == SWARM_SCOPE:
        raise InvalidSpec(
            f"swarm-scoped networks of the {create.driver or 'bridge'} driver are not"
            " supported: use the overlay driver"
        )
    if forwarded(request):
        # A follower makes its local networks on its own engine (swarmlet.manager.api.follower).
        raise InvalidSpec(f"a {create.driver or 'bridge'} network is local to its node")
    # The body as it came (aiohttp keeps what it read).
    return await _engine_create(request, await request.read())


async def _engine_create(request: web.Request, body: bytes) -> web.Response:
    """A local network: the request, as it came, answered by the engine."""
    engine = request.app[ENGINE]
    version = await engine.api_version()
    connector = aiohttp.UnixConnector(path=engine.socket_path)
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(
                f"http://docker/v{version}/networks/create",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as answer,
        ):
            data = await answer.read()
            return web.Response(
                status=answer.status,
                body=data,
                content_type=answer.content_type or "application/json",
            )
    except aiohttp.ClientError as exc:
        raise EngineError(f"cannot reach the engine at unix://{engine.socket_path}: {exc}") from exc
