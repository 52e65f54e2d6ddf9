"""The daemon's swarm state and verbs (``SwarmControl``): init, join, leave, restart.

It owns the node's identity and starts what the node's role needs: the manager (store,
controllers, dispatcher) on a manager, and the agent on every node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from swarmlet.agent.agent import Agent
from swarmlet.agent.describe import describe_node
from swarmlet.agent.engine import EngineClient
from swarmlet.agent.network import NODE_LABEL
from swarmlet.agent.session import join as join_session
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.daemon import state as identity_file
from swarmlet.daemon.addresses import advertise_addr, split_addr
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.ids import new_id
from swarmlet.manager import tokens
from swarmlet.manager.allocator import ingress_network
from swarmlet.manager.api.control import InitRequest, JoinRequest, LocalNodeState
from swarmlet.manager.manager import Manager
from swarmlet.manager.store import Op, SqliteBackend, Store
from swarmlet.models import (
    Cluster,
    ClusterSpec,
    JoinTokens,
    ManagerStatus,
    Node,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
)
from swarmlet.net.mesh import remove_mesh
from swarmlet.net.netlink import program_host

log = logging.getLogger(__name__)

ALREADY_IN_SWARM = (
    'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and'
    " join another one."
)
NOT_IN_SWARM = "This node is not part of a swarm"


class NodeControl:
    def __init__(
        self,
        *,
        state_dir: Path,
        engine: EngineClient,
        engine_socket: str,
        hostname: str,
        clock: Clock,
        container_labels: Mapping[str, str],
    ) -> None:
        self._state_dir = state_dir
        self._engine = engine
        self._engine_socket = engine_socket
        self._hostname = hostname
        self._clock = clock
        self._container_labels = dict(container_labels)
        self._identity = identity_file.load_identity(state_dir)
        self._store: Store | None = None
        self._running: list[asyncio.Task[None]] = []
        self._busy = asyncio.Lock()
        self._group: asyncio.TaskGroup | None = None

    # SwarmControl

    @property
    def state(self) -> LocalNodeState:
        return LocalNodeState.ACTIVE if self._identity else LocalNodeState.INACTIVE

    @property
    def node_id(self) -> str:
        return self._identity.node_id if self._identity else ""

    @property
    def node_addr(self) -> str:
        return self._identity.advertise_addr if self._identity else ""

    @property
    def store(self) -> Store | None:
        return self._store

    @property
    def manager_addrs(self) -> list[str]:
        return list(self._identity.manager_addrs) if self._identity else []

    @property
    def engine_socket(self) -> str:
        return self._engine_socket

    async def init(self, request: InitRequest) -> str:
        async with self._busy:
            if self._identity:
                raise Unavailable(ALREADY_IN_SWARM)
            addr = advertise_addr(request.advertise_addr, request.listen_addr)
            listen_host, port = split_addr(request.listen_addr or "0.0.0.0:2377")
            identity = identity_file.NodeIdentity(
                node_id=new_id(),
                role=NodeRole.MANAGER,
                advertise_addr=addr,
                listen_addr=f"{listen_host or '0.0.0.0'}:{port}",
                manager_addrs=[f"{addr}:{port}"],
            )
            store = Store(SqliteBackend(self._state_dir / identity_file.STORE_FILE), self._clock)
            try:
                store.commit(self._first_objects(identity, request, await self._describe_self()))
            except BaseException:
                store.close()
                identity_file.forget(self._state_dir)
                raise
            identity_file.save_identity(self._state_dir, identity)
            self._identity = identity
            self._start(store)
            return identity.node_id

    def _first_objects(
        self,
        identity: identity_file.NodeIdentity,
        request: InitRequest,
        description: NodeDescription,
    ) -> list[Op]:
        spec = ClusterSpec.model_validate(request.spec or {})
        digest = tokens.new_digest()
        cluster = Cluster(
            id=new_id(),
            spec=spec,
            join_tokens=JoinTokens(
                worker=tokens.new_token(digest), manager=tokens.new_token(digest)
            ),
        )
        node = Node(
            id=identity.node_id,
            spec=NodeSpec(role=NodeRole.MANAGER),
            description=description,
            status=NodeStatus(state=NodeState.READY, addr=identity.advertise_addr),
            manager_status=ManagerStatus(leader=True, addr=identity.manager_addrs[0]),
        )
        # The routing mesh's network, in the same commit: its subnet is the pool's first.
        ingress = ingress_network(new_id(), cluster.default_addr_pool, cluster.subnet_size)
        return [Op.create(cluster), Op.create(node), Op.create(ingress)]

    async def join(self, request: JoinRequest) -> None:
        async with self._busy:
            if self._identity:
                raise Unavailable(ALREADY_IN_SWARM)
            if not request.remote_addrs:
                raise InvalidSpec("at least 1 RemoteAddr is required to join")
            if not tokens.digest_of(request.join_token):
                raise InvalidSpec("invalid join token")
            addr = advertise_addr(request.advertise_addr, request.listen_addr)
            managers = [f"{host}:{port}" for host, port in map(split_addr, request.remote_addrs)]
            node_id = await join_session(
                managers, request.join_token, await self._describe_self(), addr
            )
            listen_host, port = split_addr(request.listen_addr or "0.0.0.0:2377")
            identity = identity_file.NodeIdentity(
                node_id=node_id,
                role=NodeRole.WORKER,
                advertise_addr=addr,
                listen_addr=f"{listen_host or '0.0.0.0'}:{port}",
                manager_addrs=managers,
            )
            identity_file.save_identity(self._state_dir, identity)
            self._identity = identity
            self._start(None)

    async def leave(self, force: bool) -> None:
        async with self._busy:
            identity = self._identity
            if identity is None:
                raise Unavailable(NOT_IN_SWARM)
            if identity.role == NodeRole.MANAGER and not force:
                raise Unavailable(
                    "You are attempting to leave the swarm on a node that is participating as"
                    " a manager. Removing the last manager erases all current state of the"
                    " swarm. Use `--force` to ignore this message."
                )
            await self._stop()
            await self._remove_containers(identity.node_id)
            # Nothing of the swarm's networks stays on the host: bridges, tunnels, rules.
            await program_host([], identity.advertise_addr)
            await remove_mesh()
            identity_file.forget(self._state_dir)
            self._identity = None

    # Running the node's parts

    async def run(self) -> None:
        """Start what the remembered identity needs and keep running until cancelled."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            identity = self._identity
            if identity is not None:
                store = None
                if identity.role == NodeRole.MANAGER:
                    backend = SqliteBackend(self._state_dir / identity_file.STORE_FILE)
                    store = Store(backend, self._clock)
                self._start(store)
            await asyncio.Event().wait()

    def _start(self, store: Store | None) -> None:
        identity = self._identity
        if identity is None or self._group is None:
            raise Unavailable("the daemon is not running")
        if store is not None:
            self._store = store
            manager = Manager(store, self._clock, identity.node_id, identity.listen_addr)
            self._running.append(self._group.create_task(manager.run(), name="manager"))
        agent = Agent(
            engine=self._engine,
            node_id=identity.node_id,
            manager_addrs=identity.manager_addrs,
            addr=identity.advertise_addr,
            hostname=self._hostname,
            clock=self._clock,
            container_labels=self._container_labels,
        )
        self._running.append(self._group.create_task(agent.run(), name="agent"))

    async def _stop(self) -> None:
        for task in reversed(self._running):
            await cancel_and_wait(task)
        self._running.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    async def _describe_self(self) -> NodeDescription:
        return await describe_node(self._engine, self._hostname)

    async def _remove_containers(self, node_id: str) -> None:
        """The node's task containers, and the sandboxes holding their namespaces."""
        for label in ("com.docker.swarm.node.id", NODE_LABEL):
            for container in await self._engine.list_containers({label: node_id}):
                await self._engine.remove_container(container.id, force=True)
