"""/_ping, /version and /info: the engine's answers, with swarmlet's API version and Swarm."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from swarmlet.errors import EngineError
from swarmlet.manager.api.common import (
    API_VERSION,
    LOCKED,
    MIN_API_VERSION,
    control_of,
    forwarded,
    json_response,
    swarm_status,
)
from swarmlet.manager.api.control import LocalNodeState, SwarmControl
from swarmlet.manager.api.nodes import is_manager
from swarmlet.manager.api.proxy import ENGINE
from swarmlet.manager.api.swarm import swarm_json
from swarmlet.models import Node


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


async def info(request: web.Request) -> web.Response:
    if forwarded(request):
        # Forwarded by a follower: only the Swarm section is the leader's to give; the follower
        # puts it into its own engine's answer (follower.py).
        return json_response({"Swarm": swarm_info(control_of(request))})
    data = await request.app[ENGINE].get_json("/info")
    data["Swarm"] = swarm_info(control_of(request))
    return json_response(data)


def swarm_info(control: SwarmControl) -> dict[str, Any]:
    """The Swarm section of /info, as daemon/cluster's Info() builds it."""
    store = control.store
    nodes = store.all(Node) if store is not None else []
    node_by_addr = {n.manager_status.addr: n.id for n in nodes if n.manager_status is not None}
    remotes = [
        {"NodeID": node_by_addr.get(addr, ""), "Addr": addr} for addr in control.manager_addrs
    ]
    info: dict[str, Any] = {
        "NodeID": control.node_id,
        "NodeAddr": control.node_addr,
        "LocalNodeState": control.state.value,
        "ControlAvailable": False,
        # A locked node's error is the lock, as daemon/cluster reports errSwarmLocked.
        "Error": LOCKED if control.state is LocalNodeState.LOCKED else "",
        "RemoteManagers": remotes or None,
    }
    if store is not None and control.state is LocalNodeState.ACTIVE:
        info["ControlAvailable"] = True
        info["Nodes"] = len(nodes)
        info["Managers"] = sum(1 for node in nodes if is_manager(node))
        cluster = store.cluster()
        if cluster is not None:
            info["Cluster"] = swarm_json(cluster, with_tokens=False)
    return info
