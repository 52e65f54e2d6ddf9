"""A fake SwarmControl and builders of stored objects, for the API's tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swarmlet.api.backend import NO_CLUSTER, ClusterBackend
from swarmlet.api.control import InitRequest, JoinRequest, LeaderRoute, LocalNodeState
from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec, Unauthorized, Unavailable
from swarmlet.ids import new_id
from swarmlet.manager.allocator import ingress_network
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.api.follower import RemoteCluster
from swarmlet.manager.api.leader import Leader
from swarmlet.manager.store import Op, Store
from swarmlet.manager.store.encryption import INVALID_UNLOCK_KEY, new_unlock_key, parse_unlock_key
from swarmlet.models import (
    Cluster,
    JoinTokens,
    ManagerStatus,
    Node,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)
from tests.api.fakes import ENGINE_SOCKET

CA_DIGEST = "3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl"


@dataclass
class FakeControl:
    """What the daemon gives the API, with the swarm verbs recorded instead of done."""

    state: LocalNodeState = LocalNodeState.INACTIVE
    node_id: str = ""
    node_addr: str = ""
    store: Store | None = None
    # Set on a follower manager: where the cluster's requests go.
    leader: LeaderRoute | None = None
    manager_addrs: list[str] = field(default_factory=list)
    engine_socket: str = ENGINE_SOCKET
    clock: Clock | None = None
    inits: list[InitRequest] = field(default_factory=list)
    joins: list[JoinRequest] = field(default_factory=list)
    leaves: list[bool] = field(default_factory=list)
    # Autolock, in memory: the unlock key ('' when off), and the store while locked.
    key: str = ""
    locked_store: Store | None = None
    autolocks: list[tuple[bool, bool]] = field(default_factory=list)
    # A follower's client of the leader (closed by ``close``).
    leader_client: Leader = field(default_factory=Leader)

    @property
    def cluster(self) -> ClusterBackend:
        """The backend the daemon would give the API for the fields as they are now."""
        if self.state is LocalNodeState.ACTIVE and self.store is not None:
            return LocalCluster(self.store)
        if self.state is LocalNodeState.ACTIVE and self.leader is not None:
            return RemoteCluster(self.leader, self.leader_client)
        return NO_CLUSTER

    async def close(self) -> None:
        await self.leader_client.close()

    async def init(self, request: InitRequest) -> str:
        if self.state is not LocalNodeState.INACTIVE:
            raise Unavailable(
                'This node is already part of a swarm. Use "docker swarm leave" to leave'
                " this swarm and join another one."
            )
        self.inits.append(request)
        self.store = Store(clock=self.clock)
        self.node_id = (await manager_in(self.store, hostname="first", addr="10.0.0.1")).id
        self.node_addr = "10.0.0.1"
        self.manager_addrs = ["10.0.0.1:2377"]
        self.state = LocalNodeState.ACTIVE
        return self.node_id

    async def join(self, request: JoinRequest) -> None:
        if self.state is not LocalNodeState.INACTIVE:
            raise Unavailable("This node is already part of a swarm.")
        if not request.join_token.startswith("SWMTKN-1-"):
            raise InvalidSpec("invalid join token")
        self.joins.append(request)
        self.state = LocalNodeState.ACTIVE
        self.node_id = new_id()
        self.manager_addrs = list(request.remote_addrs)

    async def leave(self, force: bool) -> None:
        if self.state is LocalNodeState.INACTIVE:
            raise Unavailable("This node is not part of a swarm")
        self.leaves.append(force)
        self.state = LocalNodeState.INACTIVE
        self.store = None
        self.locked_store = None
        self.key = ""

    def restart_locked(self) -> None:
        """What a restart does to a manager with autolock on: locked, its store unopened."""
        assert self.key, "only a manager with autolock on restarts locked"
        self.locked_store, self.store = self.store, None
        self.state = LocalNodeState.LOCKED

    async def unlock(self, key: str) -> None:
        assert self.state is LocalNodeState.LOCKED
        if parse_unlock_key(key) != parse_unlock_key(self.key):
            raise Unauthorized(INVALID_UNLOCK_KEY)
        self.store, self.locked_store = self.locked_store, None
        self.state = LocalNodeState.ACTIVE

    def unlock_key(self) -> str:
        return self.key

    async def set_autolock(self, enabled: bool, rotate: bool) -> str:
        self.autolocks.append((enabled, rotate))
        if not enabled:
            self.key = ""
        elif rotate or not self.key:
            self.key = new_unlock_key()
        return self.key


def token(secret: str) -> str:
    """A token in Swarm's format; the secret is padded to its 25 characters."""
    return f"SWMTKN-1-{CA_DIGEST}-{secret.ljust(25, '0')}"


async def manager_control(store: Store) -> FakeControl:
    """An active manager whose store holds the cluster, its ingress network and this node."""
    cluster = Cluster(
        id=new_id(), join_tokens=JoinTokens(worker=token("worker1"), manager=token("manager1"))
    )
    await store.commit([Op.create(cluster), Op.create(ingress_network(new_id()))])
    node = await manager_in(store, hostname="manager-1", addr="10.0.0.1")
    return FakeControl(
        state=LocalNodeState.ACTIVE,
        node_id=node.id,
        node_addr="10.0.0.1",
        store=store,
        manager_addrs=["10.0.0.1:2377"],
    )


async def manager_in(store: Store, hostname: str, addr: str) -> Node:
    return await add_node(
        store,
        hostname,
        role=NodeRole.MANAGER,
        addr=addr,
        manager_status=ManagerStatus(leader=True, addr=f"{addr}:2377"),
    )


async def add_node(
    store: Store,
    hostname: str,
    role: NodeRole = NodeRole.WORKER,
    state: NodeState = NodeState.READY,
    addr: str = "10.0.0.9",
    labels: dict[str, str] | None = None,
    engine_labels: dict[str, str] | None = None,
    manager_status: ManagerStatus | None = None,
) -> Node:
    description: dict[str, Any] = {
        "Hostname": hostname,
        "Platform": {"Architecture": "x86_64", "OS": "linux"},
        "Engine": {"EngineVersion": "20.10.24", "Labels": engine_labels or {}},
    }
    node = Node(
        id=new_id(),
        spec=NodeSpec(role=role, labels=labels or {}),
        description=NodeDescription.from_api(description),
        status=NodeStatus(state=state, addr=addr),
        manager_status=manager_status,
    )
    await store.update(lambda tx: tx.create(node))
    return store.get(Node, node.id)


def service_spec(
    name: str, image: str = "swarmlet-test/busybox:latest", **extra: Any
) -> dict[str, Any]:
    """A ServiceSpec as the CLI sends it."""
    spec: dict[str, Any] = {
        "Name": name,
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {"Image": image, "Init": False},
            "Resources": {"Limits": {}, "Reservations": {}},
            "Placement": {},
            "ForceUpdate": 0,
            "Runtime": "container",
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "vip"},
    }
    spec.update(extra)
    return spec


async def add_service(store: Store, name: str, replicas: int | None = 1, **labels: str) -> Service:
    mode: dict[str, Any] = (
        {"Global": {}} if replicas is None else {"Replicated": {"Replicas": replicas}}
    )
    spec = ServiceSpec.from_api(service_spec(name, Mode=mode, Labels=labels))
    service = Service(id=new_id(), spec=spec, spec_version=Version(index=1))
    await store.update(lambda tx: tx.create(service))
    return store.get(Service, service.id)


async def add_task(
    store: Store,
    service: Service,
    node: Node | None,
    state: TaskState = TaskState.RUNNING,
    desired: TaskState = TaskState.RUNNING,
    slot: int | None = 1,
    spec_version: int | None = None,
) -> Task:
    task = Task(
        id=new_id(),
        service_id=service.id,
        service_name=service.spec.name,
        slot=slot,
        node_id=node.id if node else None,
        spec=TaskSpec.from_api(service.spec.task_template.to_api()),
        spec_version=Version(index=spec_version or service.spec_version.index),
        status=TaskStatus(state=state),
        desired_state=desired,
    )
    await store.update(lambda tx: tx.create(task))
    return store.get(Task, task.id)
