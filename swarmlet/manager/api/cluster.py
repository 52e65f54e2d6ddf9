"""The cluster backend of a manager that holds the store: the swarm's handlers run here.

The daemon gives the API a ``LocalCluster`` while this node is an active manager with its store
open (the leader); the leader's forwarded app serves the other managers' requests with it too
(``forwarded.py``). Each handler finds the store on its request (``common.store_of``).
"""

from __future__ import annotations

from aiohttp import web

from swarmlet.api.backend import Endpoint
from swarmlet.api.errors import Handler
from swarmlet.manager.api import events, logs, networks, nodes, services, swarm, system, tasks
from swarmlet.manager.api.common import STORE
from swarmlet.manager.api.secrets import CONFIGS, SECRETS
from swarmlet.manager.leadership import ManagerView
from swarmlet.manager.store import Store

HANDLERS: dict[Endpoint, Handler] = {
    Endpoint.INFO: system.info,
    Endpoint.SWARM_INSPECT: swarm.inspect,
    Endpoint.SWARM_UPDATE: swarm.update,
    Endpoint.SWARM_UNLOCK_KEY: swarm.unlock_key,
    Endpoint.NODE_LIST: nodes.list_nodes,
    Endpoint.NODE_INSPECT: nodes.inspect_node,
    Endpoint.NODE_REMOVE: nodes.remove_node,
    Endpoint.NODE_UPDATE: nodes.update_node,
    Endpoint.SERVICE_LIST: services.list_services,
    Endpoint.SERVICE_CREATE: services.create_service,
    Endpoint.SERVICE_INSPECT: services.inspect_service,
    Endpoint.SERVICE_REMOVE: services.remove_service,
    Endpoint.SERVICE_UPDATE: services.update_service,
    Endpoint.SERVICE_LOGS: logs.service_logs,
    Endpoint.TASK_LIST: tasks.list_tasks,
    Endpoint.TASK_INSPECT: tasks.inspect_task,
    Endpoint.TASK_LOGS: logs.task_logs,
    Endpoint.NETWORK_LIST: networks.list_networks,
    Endpoint.NETWORK_CREATE: networks.create_network,
    Endpoint.NETWORK_INSPECT: networks.inspect_network,
    Endpoint.NETWORK_REMOVE: networks.remove_network,
    Endpoint.SECRET_LIST: SECRETS.list,
    Endpoint.SECRET_CREATE: SECRETS.create,
    Endpoint.SECRET_INSPECT: SECRETS.inspect,
    Endpoint.SECRET_REMOVE: SECRETS.remove,
    Endpoint.SECRET_UPDATE: SECRETS.update,
    Endpoint.CONFIG_LIST: CONFIGS.list,
    Endpoint.CONFIG_CREATE: CONFIGS.create,
    Endpoint.CONFIG_INSPECT: CONFIGS.inspect,
    Endpoint.CONFIG_REMOVE: CONFIGS.remove,
    Endpoint.CONFIG_UPDATE: CONFIGS.update,
    Endpoint.EVENTS: events.events,
}


class LocalCluster:
    """This node holds the store; ``view`` (the election, on etcd) tells which managers lead
    and are reachable when a manager's status is read (``nodes.VIEW``). Without one, a
    manager's status is answered as stored."""

    is_manager = True
    holds_store = True

    def __init__(self, store: Store, view: ManagerView | None = None) -> None:
        self.store = store
        self.view = view

    async def serve(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        request[STORE] = self.store
        if self.view is not None:
            request[nodes.VIEW] = self.view
        return await HANDLERS[endpoint](request)
