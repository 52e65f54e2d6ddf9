"""What every handler shares: the app's keys, Swarm's words for a node that is not a manager,
and the request's parts (its JSON, its query)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from aiohttp import web

from swarmlet.api.control import LocalNodeState, SwarmControl
from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec

# Protocols cannot be passed as a class, so the keys are typed by subscription.
CONTROL = web.AppKey[SwarmControl]("control")
CLOCK = web.AppKey[Clock]("clock")
# The shortest node certificate expiry a swarm may be given: Swarm's 1h, shorter for tests.
MIN_CERT_EXPIRY = web.AppKey("min_cert_expiry", timedelta)
# The app that serves the requests other managers forward to the leader
# (``swarmlet.manager.api.forwarded``).
FORWARDED = web.AppKey("forwarded", bool)
# A forwarded request's control: the leader's, as seen from the manager that forwarded it.
REQUEST_CONTROL = web.RequestKey[SwarmControl]("control")

NOT_IN_SWARM = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to '
    "connect this node to swarm and try again."
)
WORKER = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster "
    "state. Please run this command on a manager node or promote the current node to a "
    "manager."
)
MANAGER_NOT_READY = (
    "This node is not a swarm manager. Manager is being prepared or has trouble connecting to "
    "the cluster."
)
LOCKED = (
    'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker '
    'swarm unlock" to unlock it.'
)
LOCKED_LEAVE = (
    "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message."
)


def not_manager_message(state: LocalNodeState) -> str:
    """Docker's words for "this node cannot answer a cluster request" (daemon/cluster's
    errNoManager), by the node's local state."""
    if state is LocalNodeState.LOCKED:
        return LOCKED
    if state is LocalNodeState.ACTIVE:
        return WORKER
    if state is LocalNodeState.PENDING:
        return MANAGER_NOT_READY
    return NOT_IN_SWARM


def control_of(request: web.Request) -> SwarmControl:
    """The node's control; for a forwarded request, the leader's as the forwarding node sees it."""
    seen_from = request.get(REQUEST_CONTROL)
    return seen_from if seen_from is not None else request.app[CONTROL]


def forwarded(request: web.Request) -> bool:
    """Whether the request was forwarded by another manager: then no part of the answer may
    come from this host's engine (it is not the engine of the node that was asked)."""
    return request.app.get(FORWARDED, False)


def clock_of(request: web.Request) -> Clock:
    return request.app[CLOCK]


def min_cert_expiry_of(request: web.Request) -> timedelta:
    return request.app[MIN_CERT_EXPIRY]


def swarm_status(control: SwarmControl) -> str:
    """The `Swarm` header of /_ping."""
    state = control.state
    if state is LocalNodeState.ACTIVE:
        return "active/manager" if control.cluster.is_manager else "active/worker"
    return state.value


# Refused here as Go's decoder refuses them, where Python's takes them: numbers beyond the widest
# Go integers (int64, uint64) or float64, NaN and Infinity. Nesting is bounded far below
# Python's recursion limit (Engine API bodies nest about ten deep), so what is accepted can
# always be stored and written back.
MAX_JSON_DEPTH = 100
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1


def _parse_int(text: str) -> int:
    value = int(text)
    if not _MIN_INT <= value <= _MAX_INT:
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def _depth(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (a scalar is 0)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_json(raw: str | bytes) -> Any:
    """JSON as moby's decoder reads it, or InvalidSpec saying why not."""
    try:
        value = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise InvalidSpec(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError among them
        raise InvalidSpec(f"invalid JSON: {exc}") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidSpec(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (None when empty); malformed JSON is a 400 like moby's."""
    raw = await request.read()
    if not raw.strip():
        return None
    return parse_json(raw)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidSpec("invalid JSON: the body must be an object")
    return body


def bool_query(request: web.Request, key: str) -> bool:
    """A boolean query parameter read as moby's httputils.BoolValue does."""
    value = request.query.get(key, "").strip().lower()
    return value not in ("", "0", "no", "false", "none")


def version_query(request: web.Request, kind: str) -> int:
    """The required `?version=N` of an update (the object version it was read at)."""
    raw = request.query.get("version", "")
    try:
        version = int(raw)
    except ValueError:
        raise InvalidSpec(f"invalid {kind} version '{raw}': not a number") from None
    if version < 0:
        raise InvalidSpec(f"invalid {kind} version '{raw}': must not be negative")
    return version


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, separators=(",", ":")) + "\n",
        content_type="application/json",
    )


def json_texts_response(parts: Iterable[str]) -> web.Response:
    """A JSON list of objects each already written as JSON text (``Model.to_api_json``, by
    pydantic straight from the models, non-ASCII text as UTF-8 rather than ``\\u`` escapes).
    With thousands of objects, dicts in between were most of a list's time, and as garbage they
    set off full collections of the store's objects (benchmarks/api.py)."""
    return web.Response(body=f"[{','.join(parts)}]\n", content_type="application/json")
