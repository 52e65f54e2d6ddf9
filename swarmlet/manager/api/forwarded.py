"""The leader's side of forwarding: the Engine API on the manager's port, for the other managers.

The manager's port mounts this app under ``FORWARDED_PREFIX``. It admits a request only from a
client certificate whose role is manager, of a node that is a manager in the store
(``node.spec.role``); anyone else gets 403. A request is served as seen from the manager that
forwarded it (``SeenFrom``): its node ID and address, the leader's store (its backend,
``LocalCluster``). Nothing of an answer comes from the leader's engine (``common.forwarded``),
and the verbs that change a node itself (init, join, leave, unlock) are the forwarding node's
own: they are refused here.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from swarmlet.api.app import make_app
from swarmlet.api.backend import ClusterBackend
from swarmlet.api.common import CONTROL, REQUEST_CONTROL, clock_of
from swarmlet.api.control import (
    InitRequest,
    JoinRequest,
    LocalNodeState,
    SwarmControl,
)
from swarmlet.api.errors import Handler
from swarmlet.clock import Clock
from swarmlet.errors import Forbidden, InvalidSpec, Unavailable
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.ca import CertificateAuthority
from swarmlet.manager.ca.server import peer_of
from swarmlet.manager.store import Store
from swarmlet.models import Node, NodeRole
from swarmlet.pki import CertificateInfo

NOT_FORWARDED = "this request changes the node it is sent to, and is never forwarded"


def admit_manager(store: Store, clock: Clock, peer: CertificateInfo | None) -> Node:
    """The manager node a forwarded request comes from. Raises Forbidden without a
    certificate, for a removed node's, a worker's, or a manager certificate of a node that
    has been demoted since it was issued."""
    if peer is None:
        raise Forbidden("a manager certificate is required")
    node = CertificateAuthority(store, clock).admit(peer)
    if peer.role is not NodeRole.MANAGER or node.spec.role is not NodeRole.MANAGER:
        raise Forbidden(f"node {node.id} is not a manager of this swarm")
    return node


class SeenFrom:
    """The leader's ``SwarmControl`` as the manager that forwarded a request sees it: that
    node's ID and address; the leader's state, store, managers and unlock key."""

    def __init__(self, leader: SwarmControl, node: Node) -> None:
        self._leader = leader
        self._node = node

    @property
    def state(self) -> LocalNodeState:
        return self._leader.state

    @property
    def node_id(self) -> str:
        return self._node.id

    @property
    def node_addr(self) -> str:
        return self._node.status.addr

    @property
    def cluster(self) -> ClusterBackend:
        return self._leader.cluster

    @property
    def manager_addrs(self) -> list[str]:
        return self._leader.manager_addrs

    @property
    def engine_socket(self) -> str:
        return ""  # the forwarding node's engine is not reachable from here

    async def init(self, request: InitRequest) -> str:
        raise InvalidSpec(NOT_FORWARDED)

    async def join(self, request: JoinRequest) -> None:
        raise InvalidSpec(NOT_FORWARDED)

    async def leave(self, force: bool) -> None:
        raise InvalidSpec(NOT_FORWARDED)

    async def unlock(self, key: str) -> None:
        raise InvalidSpec(NOT_FORWARDED)

    def unlock_key(self) -> str:
        return self._leader.unlock_key()

    async def set_autolock(self, enabled: bool, rotate: bool) -> str:
        return await self._leader.set_autolock(enabled, rotate)


@web.middleware
async def forwarding_node(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit the forwarding manager, and serve the request as seen from it."""
    leader = request.app[CONTROL]
    cluster = leader.cluster
    if not isinstance(cluster, LocalCluster):
        raise Unavailable("this manager does not hold the swarm's store")
    node = admit_manager(cluster.store, clock_of(request), peer_of(request))
    request[REQUEST_CONTROL] = SeenFrom(leader, node)
    return await handler(request)


def forwarded_app(
    control: SwarmControl, clock: Clock, *, min_cert_expiry: timedelta = timedelta(hours=1)
) -> web.Application:
    """What the leader mounts on its port (``leader.FORWARDED_PREFIX``) for the requests the
    other managers forward: the swarm's routes, admitted from a manager's certificate only and
    answered as seen from the forwarding node."""
    return make_app(
        control,
        clock,
        min_cert_expiry=min_cert_expiry,
        forwarded=True,
        middlewares=(forwarding_node,),
    )
