"""Where swarmlet's errors become HTTP: one middleware, Docker's statuses and `{"message"}`.

The only place in swarmlet that chooses HTTP status codes (CONVENTIONS.md, 9).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pydantic
from aiohttp import web

from swarmlet.api.common import json_response
from swarmlet.errors import (
    Conflict,
    EngineError,
    Forbidden,
    InvalidSpec,
    NotFound,
    SwarmletError,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(error: SwarmletError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):  # NameConflict, VersionConflict, a swarm not locked
        return 409
    if isinstance(error, InvalidSpec):
        return 400
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, Unavailable):
        return 503
    if isinstance(error, EngineError) and 400 <= error.status <= 599:
        return error.status
    return 500


def describe_validation_error(error: pydantic.ValidationError) -> str:
    """Name each bad field by its JSON path, as the user wrote it."""
    parts = []
    for detail in error.errors(include_url=False):
        where = ".".join(str(part) for part in detail["loc"]) or "body"
        parts.append(f"{where}: {detail['msg']}")
    return "invalid JSON: " + "; ".join(parts)


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SwarmletError as exc:
        return error_response(status_of(exc), exc.message)
    except pydantic.ValidationError as exc:
        return error_response(400, describe_validation_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, str(exc) or type(exc).__name__)
