"""/_ping, /version and the engine's /info: the engine's answers, with swarmlet's API version
and the node's own part of the Swarm section (a manager's adds the cluster's:
``swarmlet.manager.api.system``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from swarmlet.api.common import LOCKED, control_of, json_response, swarm_status
from swarmlet.api.control import LocalNodeState, SwarmControl
from swarmlet.api.proxy import ENGINE
from swarmlet.api.versions import API_VERSION, MIN_API_VERSION
from swarmlet.errors import EngineError


async def ping(request: web.Request) -> web.Response:
    headers = {
        "Api-Version": API_VERSION,
        "Ostype": "linux",
        "Docker-Experimental": "false",
        "Swarm": swarm_status(control_of(request)),
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    try:
        # The CLI picks its builder from this; the engine's choice is the one that holds.
        builder = await request.app[ENGINE].builder_version()
    except EngineError:
        builder = None
    if builder:
        headers["Builder-Version"] = builder
    return web.Response(text="OK", headers=headers)


async def version(request: web.Request) -> web.Response:
    data = await request.app[ENGINE].get_json("/version")
    data["ApiVersion"] = API_VERSION
    data["MinAPIVersion"] = MIN_API_VERSION
    for component in data.get("Components") or ():
        if component.get("Name") == "Engine" and isinstance(component.get("Details"), dict):
            component["Details"]["ApiVersion"] = API_VERSION
            component["Details"]["MinAPIVersion"] = MIN_API_VERSION
    return json_response(data)


async def engine_info(request: web.Request) -> web.Response:
    """/info on a node that holds no cluster state: the engine's, with the node's Swarm."""
    data = await request.app[ENGINE].get_json("/info")
    data["Swarm"] = swarm_info(control_of(request))
    return json_response(data)


def swarm_info(control: SwarmControl) -> dict[str, Any]:
    """The Swarm section of /info as daemon/cluster's Info() builds it where the cluster's
    state is not known: the node's own part."""
    return {
        "NodeID": control.node_id,
        "NodeAddr": control.node_addr,
        "LocalNodeState": control.state.value,
        "ControlAvailable": False,
        # A locked node's error is the lock, as daemon/cluster reports errSwarmLocked.
        "Error": LOCKED if control.state is LocalNodeState.LOCKED else "",
        "RemoteManagers": [{"NodeID": "", "Addr": addr} for addr in control.manager_addrs] or None,
    }
