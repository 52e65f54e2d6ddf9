"""The dispatcher: agent sessions, heartbeats, assignments and task status.

It admits agents (a join token for a new node, a known node ID for a returning one), keeps the
time of each node's last heartbeat in memory (writing the store only when a node changes
state), pushes to every connected agent the full set of its tasks whenever they change, and
writes the agents' status updates in one transaction per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.ids import new_id
from swarmlet.manager.dispatcher import decide, networks
from swarmlet.manager.store import Op, Store, Watch
from swarmlet.models import (
    SECOND_NS,
    ManagerStatus,
    Network,
    Node,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
    Service,
    StoredObject,
    Task,
)
from swarmlet.protocol import (
    Assignments,
    Message,
    NetworkState,
    Register,
    Registered,
    StatusUpdate,
)

log = logging.getLogger(__name__)

INVALID_TOKEN = "A valid join token is necessary to join this cluster"


class SessionRefused(SwarmletError):
    """The agent may not open a session (bad token, removed node)."""


class AgentConnection(Protocol):
    def send(self, message: Message) -> None:
        """Queue a message to the agent without waiting for it to be written."""
        ...


class Dispatcher:
    def __init__(self, store: Store, clock: Clock, node_id: str = "") -> None:
        self._store = store
        self._clock = clock
        # The manager's own node: it is the leader (there is one manager for now).
        self._manager_node_id = node_id
        self._connections: dict[str, AgentConnection] = {}
        self._sent_networks: dict[str, NetworkState] = {}
        start = clock.monotonic()
        # Every known node gets a full grace period from the manager's start to reconnect.
        self._last_seen: dict[str, float] = {node.id: start for node in store.all(Node)}

    @property
    def heartbeat_period(self) -> float:
        cluster = self._store.cluster()
        period = cluster.spec.dispatcher.heartbeat_period if cluster else 5 * SECOND_NS
        return period / SECOND_NS

    # Sessions

    def register(self, message: Register) -> Registered:
        """Admit an agent, creating or refreshing its node as Ready."""
        if message.node_id:
            node = self._store.find(Node, message.node_id)
            if node is None:
                raise SessionRefused(f"node {message.node_id} has been removed from the swarm")
        else:
            node = self._new_node(message)
        status = NodeStatus(state=NodeState.READY, addr=message.addr)
        ready = node.replace(description=message.description, status=status)
        if node.id == self._manager_node_id:
            ready = ready.replace(
                manager_status=ManagerStatus(leader=True, addr=f"{message.addr}:2377")
            )
        self._store.commit([Op.update(ready) if message.node_id else Op.create(ready)])
        self._last_seen[node.id] = self._clock.monotonic()
        return Registered(node_id=node.id, heartbeat_period=self.heartbeat_period)

    def _new_node(self, message: Register) -> Node:
        cluster = self._store.cluster()
        if cluster is None or not message.join_token:
            raise SessionRefused(INVALID_TOKEN)
        if message.join_token == cluster.join_tokens.worker:
            role = NodeRole.WORKER
        elif message.join_token == cluster.join_tokens.manager:
            # Joining as a second manager needs the replicated store (a later issue).
            raise SessionRefused("joining as a manager is not supported yet: use the worker token")
        else:
            raise SessionRefused(INVALID_TOKEN)
        return Node(id=new_id(), spec=NodeSpec(role=role))

    def attach(self, node_id: str, connection: AgentConnection) -> None:
        """Start pushing assignments to a registered agent (replacing an older session)."""
        self._connections[node_id] = connection
        self._sent_networks.pop(node_id, None)
        # The network first: a task's attachment needs the host's bridge to exist.
        self._push_networks([node_id])
        self._push(node_id)

    def detach(self, node_id: str, connection: AgentConnection) -> None:
        # Only the session that is current may detach: a reconnect may have replaced it.
        if self._connections.get(node_id) is connection:
            del self._connections[node_id]
            self._sent_networks.pop(node_id, None)

    def heartbeat(self, node_id: str) -> None:
        self._last_seen[node_id] = self._clock.monotonic()

    def update_statuses(self, node_id: str, updates: Sequence[StatusUpdate]) -> None:
        """Write the accepted updates in one transaction; stale or backward ones are dropped."""
        self._last_seen[node_id] = self._clock.monotonic()
        changed: dict[str, Task] = {}
        for update in updates:
            task = changed.get(update.task_id) or self._store.find(Task, update.task_id)
            if task is None:
                continue
            accepted = decide.accept_status(task, node_id, update.status)
            if accepted is not None:
                changed[task.id] = accepted
        if changed:
            self._store.commit([Op.update(task) for task in changed.values()])

    def _push(self, node_id: str) -> None:
        connection = self._connections.get(node_id)
        if connection is not None:
            tasks = decide.assignments(self._store.tasks_of_node(node_id))
            connection.send(Assignments(tasks=tasks))

    def _push_networks(self, node_ids: Iterable[str]) -> None:
        """Send each node its network state, when it differs from what it was last sent."""
        store = self._store
        cluster = networks.Cluster(
            nodes={node.id: node for node in store.all(Node)},
            networks={network.id: network for network in store.all(Network)},
            services={service.id: service for service in store.all(Service)},
            tasks=store.all(Task),
        )
        for node_id in node_ids:
            connection = self._connections.get(node_id)
            if connection is None:
                continue
            state = networks.network_state(node_id, cluster)
            if self._sent_networks.get(node_id) != state:
                self._sent_networks[node_id] = state
                connection.send(state)

    # The loops

    async def run(self) -> None:
        # Subscribe before the first await, so no change made after run() starts is missed.
        watch = self._store.watch()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._push_assignments(watch), name="dispatcher-assignments")
            group.create_task(self._check_heartbeats(), name="dispatcher-heartbeats")

    async def _push_assignments(self, watch: Watch) -> None:
        try:
            async for batch in watch.batches():
                dirty: set[str] = set()
                for event in batch:
                    if isinstance(event.obj, Task) and event.obj.node_id:
                        dirty.add(event.obj.node_id)
                if any(_touches_networks(event.obj) for event in batch):
                    self._push_networks(list(self._connections))
                for node_id in dirty:
                    self._push(node_id)
        finally:
            watch.close()

    async def _check_heartbeats(self) -> None:
        while True:
            period = self.heartbeat_period
            await self._clock.sleep(min(1.0, period / 2))
            now = self._clock.monotonic()
            down = decide.expired_nodes(self._store.all(Node), self._last_seen, now, period)
            if down:
                status = NodeStatus(state=NodeState.DOWN, message="heartbeat failure")
                log.info("nodes down: %s", ", ".join(node.id for node in down))
                self._store.commit(
                    [
                        Op.update(node.replace(status=status.replace(addr=node.status.addr)))
                        for node in down
                    ]
                )


def _touches_networks(obj: StoredObject) -> bool:
    """Whether a change may change some host's network state (most task changes do not)."""
    if isinstance(obj, Task):
        return bool(obj.networks_attachments)
    # A node's change may take its addresses away (the event shows only the new object).
    return isinstance(obj, Network | Service | Node)
