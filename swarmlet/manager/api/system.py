"""/info where the store is: the engine's answer with the cluster's Swarm section."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from swarmlet.api.common import control_of, forwarded, json_response
from swarmlet.api.control import LocalNodeState, SwarmControl
from swarmlet.api.proxy import ENGINE
from swarmlet.api.system import swarm_info
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.nodes import is_manager
from swarmlet.manager.api.swarm import swarm_json
from swarmlet.manager.store import Store
from swarmlet.models import Node


async def info(request: web.Request) -> web.Response:
    section = cluster_swarm_info(control_of(request), store_of(request))
    if forwarded(request):
        # Forwarded by a follower: only the Swarm section is the leader's to give; the follower
        # puts it into its own engine's answer (follower.py).
        return json_response({"Swarm": section})
    data = await request.app[ENGINE].get_json("/info")
    data["Swarm"] = section
    return json_response(data)


def cluster_swarm_info(control: SwarmControl, store: Store) -> dict[str, Any]:
    """The Swarm section of /info, as daemon/cluster's Info() builds it on a manager."""
    nodes = store.all(Node)
    node_by_addr = {n.manager_status.addr: n.id for n in nodes if n.manager_status is not None}
    info = swarm_info(control)
    remotes = [
        {"NodeID": node_by_addr.get(addr, ""), "Addr": addr} for addr in control.manager_addrs
    ]
    info["RemoteManagers"] = remotes or None
    if control.state is LocalNodeState.ACTIVE:
        info["ControlAvailable"] = True
        info["Nodes"] = len(nodes)
        info["Managers"] = sum(1 for node in nodes if is_manager(node))
        cluster = store.cluster()
        if cluster is not None:
            info["Cluster"] = swarm_json(cluster, with_tokens=False)
    return info
