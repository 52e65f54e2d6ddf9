"""The Engine API application: swarm endpoints served here, everything else passed through.

Every route answers at the bare path and under `/vX.Y/` for the versions swarmlet speaks
(1.24-1.47, like a Docker 27 daemon); a version outside that range is refused with moby's words.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec
from swarmlet.manager.api import (
    autolock,
    containers,
    events,
    follower,
    logs,
    networks,
    nodes,
    services,
    swarm,
    system,
    tasks,
)
from swarmlet.manager.api.common import (
    API_VERSION,
    CLOCK,
    CONTROL,
    FORWARDED,
    MIN_API_VERSION,
    MIN_CERT_EXPIRY,
)
from swarmlet.manager.api.control import SwarmControl
from swarmlet.manager.api.errors import Handler, error_middleware
from swarmlet.manager.api.forwarded import forwarding_node
from swarmlet.manager.api.leader import LEADER, Leader
from swarmlet.manager.api.proxy import ENGINE, Engine, parse_version, proxy
from swarmlet.manager.api.secrets import CONFIGS, SECRETS

_VERSION_PREFIX = r"/{api_version:v[0-9]+\.[0-9]+}"
_VERSIONED_PATH = re.compile(r"/v([0-9]+\.[0-9]+)(?:/|$)")
# An object reference is any path segment: aiohttp's default ({id}) leaves out '{' and '}', and
# such a reference would go through to the engine and get its answer (not a swarm manager).
_ID = "{id:[^/]+}"
# The largest JSON body a handler reads (aiohttp's default is 1 MiB): a config's data may be
# up to 1000 KiB, which is 4/3 of that in base64. Passed-through bodies are streamed, unbounded.
MAX_BODY_SIZE = 4 * 1024 * 1024

Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]

# Static paths before the dynamic ones that would also match them (/services/create).
ROUTES: tuple[Route, ...] = (
    ("GET", "/_ping", system.ping),
    ("GET", "/version", system.version),
    ("GET", "/info", system.info),
    ("GET", "/swarm", swarm.inspect),
    ("POST", "/swarm/init", swarm.init),
    ("POST", "/swarm/join", swarm.join),
    ("POST", "/swarm/leave", swarm.leave),
    ("POST", "/swarm/update", swarm.update),
    ("POST", "/swarm/unlock", autolock.unlock),
    ("GET", "/swarm/unlockkey", autolock.unlock_key),
    ("GET", "/nodes", nodes.list_nodes),
    ("GET", "/nodes/{id}", nodes.inspect_node),
    ("DELETE", "/nodes/{id}", nodes.remove_node),
    ("POST", "/nodes/{id}/update", nodes.update_node),
    ("GET", "/services", services.list_services),
    ("POST", "/services/create", services.create_service),
    ("GET", "/services/{id}", services.inspect_service),
    ("DELETE", "/services/{id}", services.remove_service),
    ("POST", "/services/{id}/update", services.update_service),
    ("GET", "/services/{id}/logs", logs.service_logs),
    ("GET", "/tasks", tasks.list_tasks),
    ("GET", "/tasks/{id}", tasks.inspect_task),
    ("GET", "/tasks/{id}/logs", logs.task_logs),
    # Overlay networks are ours; other drivers and requests for local networks go through.
    ("GET", "/networks", networks.list_networks),
    ("POST", "/networks/create", networks.create_network),
    ("GET", "/networks/{id}", networks.inspect_network),
    ("DELETE", "/networks/{id}", networks.remove_network),
    ("GET", "/secrets", SECRETS.list),
    ("POST", "/secrets/create", SECRETS.create),
    ("GET", "/secrets/{id}", SECRETS.inspect),
    ("DELETE", "/secrets/{id}", SECRETS.remove),
    ("POST", "/secrets/{id}/update", SECRETS.update),
    ("GET", "/configs", CONFIGS.list),
    ("POST", "/configs/create", CONFIGS.create),
    ("GET", "/configs/{id}", CONFIGS.inspect),
    ("DELETE", "/configs/{id}", CONFIGS.remove),
    ("POST", "/configs/{id}/update", CONFIGS.update),
)

# What a node answers itself, whatever its role: the engine's, and the verbs that change the
# node (they are never forwarded).
LOCAL_HANDLERS = frozenset(
    {system.ping, system.version, swarm.init, swarm.join, swarm.leave, autolock.unlock}
)
# What a follower manager puts together from the leader's answer and its own engine's; every
# other route is forwarded to the leader as it came (follower.py).
FOLLOWER_HANDLERS: dict[Handler, follower.FollowerHandler] = {
    system.info: follower.info,
    networks.list_networks: follower.list_networks,
    networks.create_network: follower.create_network,
    networks.inspect_network: follower.inspect_network,
    networks.remove_network: follower.remove_network,
}


def make_app(
    control: SwarmControl,
    clock: Clock,
    *,
    min_cert_expiry: timedelta = timedelta(hours=1),
    forwarded: bool = False,
    attacher: Callable[[], containers.Attacher | None] | None = None,
) -> web.Application:
    """The Engine API; ``forwarded``: the app the leader serves to the other managers (see
    ``forwarded_app``)."""
    middlewares = [error_middleware, version_middleware]
    if forwarded:
        middlewares.append(forwarding_node)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_SIZE)
    app[CONTROL] = control
    app[CLOCK] = clock
    app[MIN_CERT_EXPIRY] = min_cert_expiry
    app[FORWARDED] = forwarded
    app[ENGINE] = Engine(control.engine_socket)
    app[LEADER] = Leader()
    app.on_response_prepare.append(_api_headers)
    app.on_cleanup.append(_close_clients)
    for method, template, handler in ROUTES:
        path = template.replace("{id}", _ID)
        served = handler
        if handler not in LOCAL_HANDLERS:
            served = follower.on_follower(handler, FOLLOWER_HANDLERS.get(handler, follower.forward))
        for prefix in ("", _VERSION_PREFIX):
            if method == "GET":
                app.router.add_get(prefix + path, served)  # and HEAD
            else:
                app.router.add_route(method, prefix + path, served)
    if not forwarded:
        # Containers that join the swarm's networks are this node's: never forwarded.
        if attacher is not None:
            app[containers.ATTACHER] = attacher
        for method, template, handler in containers.ROUTES:
            for prefix in ("", _VERSION_PREFIX):
                app.router.add_route(method, prefix + template.replace("{id}", _ID), handler)
        # The engine's events, with the swarm's on a manager that holds the store (a
        # follower's are its engine's alone: never forwarded).
        for method, template, handler in events.ROUTES:
            for prefix in ("", _VERSION_PREFIX):
                app.router.add_route(method, prefix + template, handler)
        # Forwarded requests are the cluster's: nothing goes on to the leader's engine.
        app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def forwarded_app(
    control: SwarmControl, clock: Clock, *, min_cert_expiry: timedelta = timedelta(hours=1)
) -> web.Application:
    """What the leader mounts on its port (``leader.FORWARDED_PREFIX``) for the requests the
    other managers forward: the swarm's routes, admitted from a manager's certificate only and
    answered as seen from the forwarding node (``forwarded.py``)."""
    return make_app(control, clock, min_cert_expiry=min_cert_expiry, forwarded=True)


def check_api_version(path: str) -> None:
    match = _VERSIONED_PATH.match(path)
    if match is None:
        return
    requested = match.group(1)
    if parse_version(requested) < parse_version(MIN_API_VERSION):
        raise InvalidSpec(
            f"client version {requested} is too old. Minimum supported API version is"
            f" {MIN_API_VERSION}, please upgrade your client to a newer version"
        )
    if parse_version(requested) > parse_version(API_VERSION):
        raise InvalidSpec(
            f"client version {requested} is too new. Maximum supported API version is {API_VERSION}"
        )


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_api_version(request.path)
    return await handler(request)


async def _api_headers(request: web.Request, response: web.StreamResponse) -> None:
    # moby's version middleware marks every answer; proxied ones carry ours, not the engine's.
    response.headers["Api-Version"] = API_VERSION
    response.headers["Ostype"] = "linux"


async def _close_clients(app: web.Application) -> None:
    await app[ENGINE].close()
    await app[LEADER].close()
