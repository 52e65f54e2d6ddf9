"""Who answers the swarm's requests: the cluster backend the daemon gives the API.

Every node serves the Engine API, but only a manager knows the cluster's state. The app sends
each swarm endpoint (``Endpoint``) to the node's current backend (``SwarmControl.cluster``),
which the daemon sets whenever the node's role or state changes:

- ``LocalCluster`` (``swarmlet.manager.api.cluster``): this node holds the store; the swarm's
  handlers run here.
- ``RemoteCluster`` (``swarmlet.manager.api.follower``): another manager does; the requests
  are forwarded to it, with a follower's mixed answers for ``/info`` and ``/networks``.
- ``NoCluster`` (here): no one does; Swarm's 503 "This node is not a swarm manager..." (or
  Locked), except for what the engine answers alone (``/info``, local networks, events).

The first two are imported only where the node is or becomes a manager.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from aiohttp import web

from swarmlet.api import networks
from swarmlet.api.common import LOCKED, control_of, not_manager_message
from swarmlet.api.control import LocalNodeState
from swarmlet.api.proxy import ENGINE
from swarmlet.api.system import engine_info
from swarmlet.errors import Locked, SwarmletError, Unavailable


class Endpoint(StrEnum):
    """A swarm endpoint of the Engine API, answered by the cluster backend."""

    INFO = "info"
    SWARM_INSPECT = "swarm.inspect"
    SWARM_UPDATE = "swarm.update"
    SWARM_UNLOCK_KEY = "swarm.unlockkey"
    NODE_LIST = "node.list"
    NODE_INSPECT = "node.inspect"
    NODE_REMOVE = "node.remove"
    NODE_UPDATE = "node.update"
    SERVICE_LIST = "service.list"
    SERVICE_CREATE = "service.create"
    SERVICE_INSPECT = "service.inspect"
    SERVICE_REMOVE = "service.remove"
    SERVICE_UPDATE = "service.update"
    SERVICE_LOGS = "service.logs"
    TASK_LIST = "task.list"
    TASK_INSPECT = "task.inspect"
    TASK_LOGS = "task.logs"
    NETWORK_LIST = "network.list"
    NETWORK_CREATE = "network.create"
    NETWORK_INSPECT = "network.inspect"
    NETWORK_REMOVE = "network.remove"
    SECRET_LIST = "secret.list"
    SECRET_CREATE = "secret.create"
    SECRET_INSPECT = "secret.inspect"
    SECRET_REMOVE = "secret.remove"
    SECRET_UPDATE = "secret.update"
    CONFIG_LIST = "config.list"
    CONFIG_CREATE = "config.create"
    CONFIG_INSPECT = "config.inspect"
    CONFIG_REMOVE = "config.remove"
    CONFIG_UPDATE = "config.update"
    # The engine's events, with the swarm's where the store is (never forwarded).
    EVENTS = "events"


class ClusterBackend(Protocol):
    @property
    def is_manager(self) -> bool:
        """Whether the node is a manager (the `Swarm` header of /_ping says so)."""
        ...

    @property
    def holds_store(self) -> bool:
        """Whether the cluster's state is here (an unlock is then refused: not locked)."""
        ...

    async def serve(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        """The answer to a request for ``endpoint``."""
        ...


def refusal(state: LocalNodeState) -> SwarmletError:
    """Docker's error for a swarm request on a node that cannot answer it: Locked (503) on a
    locked manager until ``docker swarm unlock``, else Unavailable (503) in the state's words
    (daemon/cluster's errNoManager)."""
    if state is LocalNodeState.LOCKED:
        return Locked(LOCKED)
    return Unavailable(not_manager_message(state))


class NoCluster:
    """A worker, a locked manager, a node outside a swarm: the engine's answers where there is
    one, Swarm's refusal for the rest."""

    is_manager = False
    holds_store = False

    async def serve(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        if endpoint is Endpoint.INFO:
            return await engine_info(request)
        if endpoint in (Endpoint.NETWORK_LIST, Endpoint.NETWORK_INSPECT, Endpoint.NETWORK_REMOVE):
            return await request.app[ENGINE].forward(request)
        if endpoint is Endpoint.NETWORK_CREATE:
            return await networks.create_network(request, refusal(control_of(request).state))
        if endpoint is Endpoint.EVENTS:
            return await request.app[ENGINE].forward(request)
        raise refusal(control_of(request).state)


NO_CLUSTER = NoCluster()
