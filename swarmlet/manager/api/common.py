"""What every handler shares: the app's keys, the manager check, and the request's parts."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.manager.api.control import LocalNodeState, SwarmControl
from swarmlet.manager.store import Store

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"

# Protocols cannot be passed as a class, so the keys are typed by subscription.
CONTROL = web.AppKey[SwarmControl]("control")
CLOCK = web.AppKey[Clock]("clock")

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
    return request.app[CONTROL]


def clock_of(request: web.Request) -> Clock:
    return request.app[CLOCK]


def store_of(request: web.Request) -> Store:
    """The cluster store, or Unavailable (503) when this node is not an active manager."""
    control = control_of(request)
    store = control.store
    if store is None or control.state is not LocalNodeState.ACTIVE:
        raise Unavailable(not_manager_message(control.state))
    return store


def swarm_status(control: SwarmControl) -> str:
    """The `Swarm` header of /_ping."""
    state = control.state
    if state is LocalNodeState.ACTIVE:
        return "active/manager" if control.store is not None else "active/worker"
    return state.value


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (None when empty); malformed JSON is a 400 like moby's."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidSpec(f"invalid JSON: {exc}") from exc


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
