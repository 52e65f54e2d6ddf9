"""The Engine API application: swarm endpoints served here, everything else passed through.

Every route answers at the bare path and under `/vX.Y/` for the versions swarmlet speaks
(1.24-1.47, like a Docker 27 daemon); a version outside that range is refused with moby's words.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec
from swarmlet.manager.api import networks, nodes, services, swarm, system, tasks
from swarmlet.manager.api.common import API_VERSION, CLOCK, CONTROL, MIN_API_VERSION
from swarmlet.manager.api.control import SwarmControl
from swarmlet.manager.api.errors import Handler, error_middleware
from swarmlet.manager.api.proxy import ENGINE, Engine, parse_version, proxy

_VERSION_PREFIX = r"/{api_version:v[0-9]+\.[0-9]+}"
_VERSIONED_PATH = re.compile(r"/v([0-9]+\.[0-9]+)(?:/|$)")

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
    ("GET", "/nodes", nodes.list_nodes),
    ("GET", "/nodes/{id}", nodes.inspect_node),
    ("DELETE", "/nodes/{id}", nodes.remove_node),
    ("POST", "/nodes/{id}/update", nodes.update_node),
    ("GET", "/services", services.list_services),
    ("POST", "/services/create", services.create_service),
    ("GET", "/services/{id}", services.inspect_service),
    ("DELETE", "/services/{id}", services.remove_service),
    ("POST", "/services/{id}/update", services.update_service),
    ("GET", "/tasks", tasks.list_tasks),
    ("GET", "/tasks/{id}", tasks.inspect_task),
    # Overlay networks are ours; other drivers and requests for local networks go through.
    ("GET", "/networks", networks.list_networks),
    ("POST", "/networks/create", networks.create_network),
    ("GET", "/networks/{id}", networks.inspect_network),
    ("DELETE", "/networks/{id}", networks.remove_network),
)


def make_app(control: SwarmControl, clock: Clock) -> web.Application:
    app = web.Application(middlewares=[error_middleware, version_middleware])
    app[CONTROL] = control
    app[CLOCK] = clock
    app[ENGINE] = Engine(control.engine_socket)
    app.on_response_prepare.append(_api_headers)
    app.on_cleanup.append(_close_engine)
    for method, path, handler in ROUTES:
        for prefix in ("", _VERSION_PREFIX):
            if method == "GET":
                app.router.add_get(prefix + path, handler)  # and HEAD
            else:
                app.router.add_route(method, prefix + path, handler)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


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


async def _close_engine(app: web.Application) -> None:
    await app[ENGINE].close()
