"""The API versions swarmlet speaks (1.24-1.47, like a Docker 27 daemon), and the middleware
that refuses a request under a `/vX.Y/` prefix outside them, in moby's words."""

from __future__ import annotations

import re

from aiohttp import web

from swarmlet.api.errors import Handler
from swarmlet.api.proxy import parse_version
from swarmlet.errors import InvalidSpec

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"

_VERSIONED_PATH = re.compile(r"/v([0-9]+\.[0-9]+)(?:/|$)")


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


async def api_headers(request: web.Request, response: web.StreamResponse) -> None:
    """moby's version middleware marks every answer; proxied ones carry ours, not the engine's."""
    response.headers["Api-Version"] = API_VERSION
    response.headers["Ostype"] = "linux"
