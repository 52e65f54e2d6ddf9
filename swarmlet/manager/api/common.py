"""What the swarm's handlers share: the store of the request, given by the cluster backend that
serves it (``cluster.LocalCluster``)."""

from __future__ import annotations

from aiohttp import web

from swarmlet.api.backend import refusal
from swarmlet.api.common import control_of
from swarmlet.manager.store import Store

# The store a swarm request is answered from, set by the backend that holds it.
STORE = web.RequestKey("store", Store)


def store_of(request: web.Request) -> Store:
    """The cluster store. Only ``LocalCluster`` (an active manager's backend) calls the
    handlers that ask for it; anywhere else this is the refusal of a node that holds none."""
    store: Store | None = request.get(STORE)
    if store is None:
        raise refusal(control_of(request).state)
    return store
