"""The cluster backend of a follower manager (``RemoteCluster``): the cluster's requests go to
the leader (``leader.py``).

Most of them are the leader's alone and are forwarded as they came. A few mix the cluster's
state with this host's engine, and the follower puts the two together: ``/info`` is the local
engine's with the leader's ``Swarm`` section (as seen from this node), and ``/networks`` lists
the local engine's networks beside the swarm's, looks a network up at the leader first, then
locally, and creates an overlay network at the leader, any other on the local engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from swarmlet.api.backend import Endpoint
from swarmlet.api.common import control_of, json_response, read_json_object
from swarmlet.api.control import LeaderRoute
from swarmlet.api.networks import (
    SWARM_SCOPE,
    NetworkCreateRequest,
    create_local,
    engine_networks,
)
from swarmlet.api.proxy import ENGINE
from swarmlet.api.system import swarm_info
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.manager.api.leader import Answer, Leader
from swarmlet.models import OVERLAY


class RemoteCluster:
    """Another manager holds the store: this follower reaches it by ``route`` with ``client``
    (one per daemon: its connections are kept)."""

    is_manager = True
    holds_store = False

    def __init__(self, route: LeaderRoute, client: Leader) -> None:
        self.route = route
        self.client = client

    async def serve(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        if endpoint is Endpoint.EVENTS:
            # A follower's events are its engine's alone: never forwarded.
            return await request.app[ENGINE].forward(request)
        handler = FOLLOWER_HANDLERS.get(endpoint)
        if handler is None:
            return await self.forward(request)
        return await handler(request, self)

    async def forward(self, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        """The request as it came, answered by the leader and streamed back."""
        return await self.client.forward(request, self.route, body=body)

    async def ask(self, request: web.Request) -> Answer:
        """The leader's whole answer to the request, for a handler that adds to it."""
        return await self.client.ask(request, self.route)


def _json_object(answer: Answer) -> dict[str, Any]:
    """The answer's body when it is a JSON object, else {} (a HEAD has no body)."""
    try:
        data = answer.json()
    except InvalidSpec:
        return {}
    return data if isinstance(data, dict) else {}


async def _swarm_section(request: web.Request, leader: RemoteCluster) -> dict[str, Any]:
    """The leader's Swarm section of /info, as seen from this node; when the leader does not
    give one, this node's own, saying why."""
    try:
        answer = await leader.ask(request)
    except Unavailable as exc:
        error = exc.message
    else:
        body = _json_object(answer)
        swarm = body.get("Swarm")
        if answer.status == 200 and isinstance(swarm, dict):
            return swarm
        error = str(body.get("message") or f"the leader answered {answer.status}")
    section = swarm_info(control_of(request))
    section["ControlAvailable"] = True
    section["Error"] = error
    return section


async def info(request: web.Request, leader: RemoteCluster) -> web.StreamResponse:
    data = await request.app[ENGINE].get_json("/info")
    data["Swarm"] = await _swarm_section(request, leader)
    return json_response(data)


async def list_networks(request: web.Request, leader: RemoteCluster) -> web.StreamResponse:
    """The local engine's networks, then the swarm's (the leader checks the filters)."""
    answer = await leader.ask(request)
    if answer.status != 200:
        return answer.response()
    ours = answer.json()
    raw_filters = request.query.get("filters")
    path = "/networks" + (f"?filters={quote(raw_filters, safe='')}" if raw_filters else "")
    local = await request.app[ENGINE].get_json(path)
    return json_response([*engine_networks(local), *(ours if isinstance(ours, list) else [])])


async def inspect_network(request: web.Request, leader: RemoteCluster) -> web.StreamResponse:
    """The swarm's network of that reference, else the local engine's."""
    scope = request.query.get("scope", "")
    if scope == "local":
        return await request.app[ENGINE].forward(request)
    answer = await leader.ask(request)
    if answer.status == 404 and scope != SWARM_SCOPE:
        return await request.app[ENGINE].forward(request)
    return answer.response()


async def remove_network(request: web.Request, leader: RemoteCluster) -> web.StreamResponse:
    answer = await leader.ask(request)
    if answer.status == 404:
        return await request.app[ENGINE].forward(request)
    return answer.response()


async def create_network(request: web.Request, leader: RemoteCluster) -> web.StreamResponse:
    """An overlay network is the swarm's: the leader makes it. Any other is the local
    engine's, as on any node."""
    create = NetworkCreateRequest.from_api(await read_json_object(request))
    if create.driver == OVERLAY:
        return await leader.forward(request, body=await request.read())
    return await create_local(request, create)


FollowerHandler = Callable[[web.Request, RemoteCluster], Awaitable[web.StreamResponse]]

# What a follower puts together from the leader's answer and its own engine's; every other
# endpoint is forwarded to the leader as it came.
FOLLOWER_HANDLERS: dict[Endpoint, FollowerHandler] = {
    Endpoint.INFO: info,
    Endpoint.NETWORK_LIST: list_networks,
    Endpoint.NETWORK_CREATE: create_network,
    Endpoint.NETWORK_INSPECT: inspect_network,
    Endpoint.NETWORK_REMOVE: remove_network,
}
