"""What a follower manager answers: the cluster's requests go to the leader (``leader.py``).

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

from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.manager.api import networks
from swarmlet.manager.api.common import control_of, json_response, read_json_object
from swarmlet.manager.api.control import LeaderRoute
from swarmlet.manager.api.errors import Handler
from swarmlet.manager.api.leader import LEADER, Answer
from swarmlet.manager.api.proxy import ENGINE
from swarmlet.manager.api.system import swarm_info
from swarmlet.models import OVERLAY

FollowerHandler = Callable[[web.Request, LeaderRoute], Awaitable[web.StreamResponse]]


async def forward(request: web.Request, route: LeaderRoute) -> web.StreamResponse:
    return await request.app[LEADER].forward(request, route)


def on_follower(handler: Handler, follower: FollowerHandler = forward) -> Handler:
    """The route's handler, except on a follower: there, ``follower`` (by default, the
    request forwarded to the leader)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        route = control_of(request).leader
        if route is None:
            return await handler(request)
        return await follower(request, route)

    return handle


def _json_object(answer: Answer) -> dict[str, Any]:
    """The answer's body when it is a JSON object, else {} (a HEAD has no body)."""
    try:
        data = answer.json()
    except InvalidSpec:
        return {}
    return data if isinstance(data, dict) else {}


async def _swarm_section(request: web.Request, route: LeaderRoute) -> dict[str, Any]:
    """The leader's Swarm section of /info, as seen from this node; when the leader does not
    give one, this node's own, saying why."""
    try:
        answer = await request.app[LEADER].ask(request, route)
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


async def info(request: web.Request, route: LeaderRoute) -> web.StreamResponse:
    data = await request.app[ENGINE].get_json("/info")
    data["Swarm"] = await _swarm_section(request, route)
    return json_response(data)


async def list_networks(request: web.Request, route: LeaderRoute) -> web.StreamResponse:
    """The local engine's networks, then the swarm's (the leader checks the filters)."""
    answer = await request.app[LEADER].ask(request, route)
    if answer.status != 200:
        return answer.response()
    ours = answer.json()
    raw_filters = request.query.get("filters")
    path = "/networks" + (f"?filters={quote(raw_filters, safe='')}" if raw_filters else "")
    local = await request.app[ENGINE].get_json(path)
    return json_response(
        [*networks.engine_networks(local), *(ours if isinstance(ours, list) else [])]
    )


async def inspect_network(request: web.Request, route: LeaderRoute) -> web.StreamResponse:
    """The swarm's network of that reference, else the local engine's."""
    scope = request.query.get("scope", "")
    if scope == "local":
        return await request.app[ENGINE].forward(request)
    answer = await request.app[LEADER].ask(request, route)
    if answer.status == 404 and scope != networks.SWARM_SCOPE:
        return await request.app[ENGINE].forward(request)
    return answer.response()


async def remove_network(request: web.Request, route: LeaderRoute) -> web.StreamResponse:
    answer = await request.app[LEADER].ask(request, route)
    if answer.status == 404:
        return await request.app[ENGINE].forward(request)
    return answer.response()


async def create_network(request: web.Request, route: LeaderRoute) -> web.StreamResponse:
    """An overlay network is the swarm's: the leader makes it. Any other is the local
    engine's, as on any node."""
    create = networks.NetworkCreateRequest.from_api(await read_json_object(request))
    if create.driver == OVERLAY:
        return await request.app[LEADER].forward(request, route, body=await request.read())
    return await networks.create_network(request)
