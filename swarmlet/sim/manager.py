"""A real manager in this process, for simulations: what ``docker swarm init`` founds, on an
in-memory store, serving agents on a loopback port with TLS, and its Engine API as an aiohttp
application.

It runs the real ``Manager`` (dispatcher, CA, allocator, orchestrators, scheduler, reaper)
and nothing else: no agent of its own, so its node is drained (it takes no tasks) and, with
no heartbeats, is shown Down after the dispatcher's grace. The API's swarm verbs (init, join,
leave, autolock) are refused: the cluster is made once, here. For tests and benchmarks only.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from swarmlet.api import make_app
from swarmlet.api.backend import NO_CLUSTER, ClusterBackend
from swarmlet.api.control import InitRequest, JoinRequest, LocalNodeState
from swarmlet.clock import Clock, SystemClock
from swarmlet.errors import Unavailable
from swarmlet.ids import new_id
from swarmlet.manager.allocator import ingress_network
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.ca import CertificateAuthority, new_cluster_root
from swarmlet.manager.manager import Manager
from swarmlet.manager.store import MemoryBackend, Op, Store
from swarmlet.models import (
    DEFAULT_POOLS,
    Cluster,
    ManagerStatus,
    Node,
    NodeAvailability,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
)
from swarmlet.pki import Credentials
from swarmlet.pki.ca import new_key_and_csr

HOST = "127.0.0.1"
REFUSED = "the simulated manager's swarm is made once, at its start"


def free_port(host: str = HOST) -> int:
    """A port free now (another process may take it before it is bound: tests only)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalControl:
    """The ``SwarmControl`` of an active manager holding ``store``; the verbs are refused."""

    store: Store | None
    node_id: str
    node_addr: str
    manager_addrs: list[str] = field(default_factory=list)
    state: LocalNodeState = LocalNodeState.ACTIVE
    # Nothing listens there: requests the API passes through to an engine fail.
    engine_socket: str = "/nonexistent/docker.sock"

    @property
    def cluster(self) -> ClusterBackend:
        return LocalCluster(self.store) if self.store is not None else NO_CLUSTER

    async def init(self, request: InitRequest) -> str:
        raise Unavailable(REFUSED)

    async def join(self, request: JoinRequest) -> None:
        raise Unavailable(REFUSED)

    async def leave(self, force: bool) -> None:
        raise Unavailable(REFUSED)

    async def unlock(self, key: str) -> None:
        raise Unavailable(REFUSED)

    def unlock_key(self) -> str:
        return ""

    async def set_autolock(self, enabled: bool, rotate: bool) -> str:
        raise Unavailable(REFUSED)


class LocalManager:
    """A founded cluster (root CA, tokens, ``ingress``, the manager's node and certificate)
    on an in-memory store; ``run()`` serves it until cancelled. Made by ``found``."""

    def __init__(
        self, folder: Path, clock: Clock | None = None, host: str = HOST, port: int = 0
    ) -> None:
        """An empty store and the manager's address: ``found`` founds the cluster on it."""
        self.clock: Clock = clock or SystemClock()
        self.store = Store(MemoryBackend(), self.clock)
        self.host = host
        self.addr = f"{host}:{port or free_port(host)}"
        self.credentials = Credentials(folder / "certificates")
        self.node_id = new_id()

    @classmethod
    async def found(
        cls, folder: Path, clock: Clock | None = None, host: str = HOST, port: int = 0
    ) -> LocalManager:
        """A manager with its cluster founded, ready to ``run``."""
        manager = cls(folder, clock, host, port)
        await manager._found_cluster()
        return manager

    async def _found_cluster(self) -> None:
        root_ca, tokens = new_cluster_root(self.clock.now())
        cluster = Cluster(id=new_id(), join_tokens=tokens, root_ca=root_ca)
        ingress = ingress_network(new_id(), DEFAULT_POOLS, cluster.subnet_size)
        await self.store.commit([Op.create(cluster), Op.create(ingress)])
        node = Node(
            id=self.node_id,
            spec=NodeSpec(role=NodeRole.MANAGER, availability=NodeAvailability.DRAIN),
            description=NodeDescription(hostname="sim-manager"),
            status=NodeStatus(state=NodeState.READY, addr=self.host),
            manager_status=ManagerStatus(leader=True, addr=self.addr),
        )
        key, csr = new_key_and_csr()
        authority = CertificateAuthority(self.store, self.clock)
        issued = await authority.create_node_certificate(node, csr)
        self.credentials.save(trust_pem=issued.trust, cert_pem=issued.certificate, key_pem=key)

    @property
    def worker_token(self) -> str:
        cluster = self.store.cluster()
        assert cluster is not None
        return cluster.join_tokens.worker

    def api(self) -> web.Application:
        """The Engine API of this manager (serve it, or hand it to aiohttp's test client)."""
        control = LocalControl(
            store=self.store,
            node_id=self.node_id,
            node_addr=self.addr.rpartition(":")[0],
            manager_addrs=[self.addr],
        )
        return make_app(control, self.clock)

    async def run(self) -> None:
        manager = Manager(self.store, self.clock, self.node_id, self.addr, self.credentials)
        await manager.run()
