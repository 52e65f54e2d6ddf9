"""The Engine API application, served by every node: the node's own endpoints answered here, the
swarm's sent to the node's cluster backend (``backend.py``), everything else passed through to
the engine.

Every route answers at the bare path and under `/vX.Y/` for the versions swarmlet speaks
(``versions.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Middleware

from swarmlet.api import autolock, containers, swarm, system
from swarmlet.api.backend import Endpoint
from swarmlet.api.common import CLOCK, CONTROL, FORWARDED, MIN_CERT_EXPIRY, control_of
from swarmlet.api.control import SwarmControl
from swarmlet.api.errors import Handler, error_middleware
from swarmlet.api.proxy import ENGINE, Engine, proxy
from swarmlet.api.versions import api_headers, version_middleware
from swarmlet.clock import Clock

_VERSION_PREFIX = r"/{api_version:v[0-9]+\.[0-9]+}"
# An object reference is any path segment: aiohttp's default ({id}) leaves out '{' and '}', and
# such a reference would go through to the engine and get its answer (not a swarm manager).
_ID = "{id:[^/]+}"
# The largest JSON body a handler reads (aiohttp's default is 1 MiB): a config's data may be
# up to 1000 KiB, which is 4/3 of that in base64. Passed-through bodies are streamed, unbounded.
MAX_BODY_SIZE = 4 * 1024 * 1024

# What a node answers itself, whatever its role: the engine's, and the verbs that change the
# node (they are never forwarded).
LOCAL_HANDLERS: dict[str, Handler] = {
    "ping": system.ping,
    "version": system.version,
    "swarm.init": swarm.init,
    "swarm.join": swarm.join,
    "swarm.leave": swarm.leave,
    "swarm.unlock": autolock.unlock,
}

# (method, path, what answers it: a local handler's name or a swarm endpoint). Static paths
# before the dynamic ones that would also match them (/services/create).
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/_ping", "ping"),
    ("GET", "/version", "version"),
    ("GET", "/info", Endpoint.INFO),
    ("GET", "/swarm", Endpoint.SWARM_INSPECT),
    ("POST", "/swarm/init", "swarm.init"),
    ("POST", "/swarm/join", "swarm.join"),
    ("POST", "/swarm/leave", "swarm.leave"),
    ("POST", "/swarm/update", Endpoint.SWARM_UPDATE),
    ("POST", "/swarm/unlock", "swarm.unlock"),
    ("GET", "/swarm/unlockkey", Endpoint.SWARM_UNLOCK_KEY),
    ("GET", "/nodes", Endpoint.NODE_LIST),
    ("GET", "/nodes/{id}", Endpoint.NODE_INSPECT),
    ("DELETE", "/nodes/{id}", Endpoint.NODE_REMOVE),
    ("POST", "/nodes/{id}/update", Endpoint.NODE_UPDATE),
    ("GET", "/services", Endpoint.SERVICE_LIST),
    ("POST", "/services/create", Endpoint.SERVICE_CREATE),
    ("GET", "/services/{id}", Endpoint.SERVICE_INSPECT),
    ("DELETE", "/services/{id}", Endpoint.SERVICE_REMOVE),
    ("POST", "/services/{id}/update", Endpoint.SERVICE_UPDATE),
    ("GET", "/services/{id}/logs", Endpoint.SERVICE_LOGS),
    ("GET", "/tasks", Endpoint.TASK_LIST),
    ("GET", "/tasks/{id}", Endpoint.TASK_INSPECT),
    ("GET", "/tasks/{id}/logs", Endpoint.TASK_LOGS),
    # Overlay networks are the swarm's; other drivers and requests for local networks go to
    # the engine.
    ("GET", "/networks", Endpoint.NETWORK_LIST),
    ("POST", "/networks/create", Endpoint.NETWORK_CREATE),
    ("GET", "/networks/{id}", Endpoint.NETWORK_INSPECT),
    ("DELETE", "/networks/{id}", Endpoint.NETWORK_REMOVE),
    ("GET", "/secrets", Endpoint.SECRET_LIST),
    ("POST", "/secrets/create", Endpoint.SECRET_CREATE),
    ("GET", "/secrets/{id}", Endpoint.SECRET_INSPECT),
    ("DELETE", "/secrets/{id}", Endpoint.SECRET_REMOVE),
    ("POST", "/secrets/{id}/update", Endpoint.SECRET_UPDATE),
    ("GET", "/configs", Endpoint.CONFIG_LIST),
    ("POST", "/configs/create", Endpoint.CONFIG_CREATE),
    ("GET", "/configs/{id}", Endpoint.CONFIG_INSPECT),
    ("DELETE", "/configs/{id}", Endpoint.CONFIG_REMOVE),
    ("POST", "/configs/{id}/update", Endpoint.CONFIG_UPDATE),
)
# The engine's events, with the swarm's where the store is: this node's, never forwarded.
EVENTS_ROUTE = ("GET", "/events", Endpoint.EVENTS)


def make_app(
    control: SwarmControl,
    clock: Clock,
    *,
    min_cert_expiry: timedelta = timedelta(hours=1),
    forwarded: bool = False,
    middlewares: Iterable[Middleware] = (),
    attacher: Callable[[], containers.Attacher | None] | None = None,
) -> web.Application:
    """The Engine API; ``forwarded``: the app the leader serves to the other managers
    (``swarmlet.manager.api.forwarded``, which gives its admission as ``middlewares``)."""
    app = web.Application(
        middlewares=[error_middleware, version_middleware, *middlewares],
        client_max_size=MAX_BODY_SIZE,
    )
    app[CONTROL] = control
    app[CLOCK] = clock
    app[MIN_CERT_EXPIRY] = min_cert_expiry
    app[FORWARDED] = forwarded
    app[ENGINE] = Engine(control.engine_socket)
    app.on_response_prepare.append(api_headers)
    app.on_cleanup.append(_close_engine)
    routes = ROUTES if forwarded else (*ROUTES, EVENTS_ROUTE)
    for method, template, answer in routes:
        handler = LOCAL_HANDLERS[answer] if answer in LOCAL_HANDLERS else _swarm(Endpoint(answer))
        _add(app, method, template, handler)
    if not forwarded:
        # Containers that join the swarm's networks are this node's: never forwarded.
        if attacher is not None:
            app[containers.ATTACHER] = attacher
        for method, template, handler in containers.ROUTES:
            _add(app, method, template, handler)
        # Forwarded requests are the cluster's: nothing goes on to the leader's engine.
        app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def _swarm(endpoint: Endpoint) -> Handler:
    """The endpoint, answered by the node's cluster backend of the moment."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await control_of(request).cluster.serve(endpoint, request)

    return handle


def _add(app: web.Application, method: str, template: str, handler: Handler) -> None:
    path = template.replace("{id}", _ID)
    for prefix in ("", _VERSION_PREFIX):
        if method == "GET":
            app.router.add_get(prefix + path, handler)  # and HEAD
        else:
            app.router.add_route(method, prefix + path, handler)


async def _close_engine(app: web.Application) -> None:
    await app[ENGINE].close()
