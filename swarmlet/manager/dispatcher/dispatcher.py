"""The dispatcher: agent sessions, heartbeats, assignments and task status.

It admits agents (nodes the CA gave a certificate, named by it), keeps the
time of each node's last heartbeat in memory (writing the store only when a node changes
state), pushes to every connected agent the full set of its tasks whenever they change (with
the secrets and configs those tasks use, and no other), and writes the agents' status
updates in one transaction per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.manager.ca.rotation import certificate_update
from swarmlet.manager.dispatcher import decide, networks
from swarmlet.manager.dispatcher.logs import broker_for
from swarmlet.manager.store import Action, Op, OwnCommits, Store, Tx, Watch
from swarmlet.models import (
    SECOND_NS,
    Cluster,
    Config,
    ManagerStatus,
    Network,
    Node,
    NodeState,
    NodeStatus,
    Secret,
    Service,
    StoredObject,
    Task,
    TLSInfo,
)
from swarmlet.net.names import VXLAN_PORT
from swarmlet.protocol import (
    Assignments,
    Certificates,
    LogsBatch,
    LogsDone,
    Message,
    NetworkState,
    NodeTLS,
    Register,
    Registered,
    StatusUpdate,
)

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_PERIOD = 5 * SECOND_NS
# Seconds agents' status reports wait to be written together (as SwarmKit's dispatcher does).
STATUS_BATCH_S = 0.1


class SessionRefused(SwarmletError):
    """The agent may not open a session (its node was removed)."""


class AgentConnection(Protocol):
    def send(self, message: Message) -> None:
        """Queue a message to the agent without waiting for it to be written."""
        ...

    def close(self) -> None:
        """End the session (its node was removed)."""
        ...


class Dispatcher:
    def __init__(self, store: Store, clock: Clock, node_id: str = "") -> None:
        self._store = store
        self._clock = clock
        # The manager's own node: it is the leader (there is one manager for now).
        self._manager_node_id = node_id
        self._connections: dict[str, AgentConnection] = {}
        # ``docker service logs``: subscriptions sent on the sessions, answers routed back.
        self.logs = broker_for(store, clock)
        self._sent_networks: dict[str, NetworkState] = {}
        self._sent_certificates: dict[str, Certificates] = {}
        # The commits of agents' status reports.
        self._reported = OwnCommits()
        # Status reports waiting for the next batch's commit, when the first of them came
        # (event loop time), and the one task that writes the batches, in order.
        self._reports: list[tuple[str, Sequence[StatusUpdate]]] = []
        self._batch_started = 0.0
        self._writer: asyncio.Task[None] | None = None
        # Set to write the waiting reports at once (the dispatcher is stopping).
        self._flush_now = asyncio.Event()
        start = clock.monotonic()
        # Every known node gets a full grace period from the manager's start to reconnect.
        self._last_seen: dict[str, float] = {node.id: start for node in store.all(Node)}

    @property
    def store(self) -> Store:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def heartbeat_period(self) -> float:
        cluster = self._store.cluster()
        period = cluster.spec.dispatcher.heartbeat_period if cluster else 0
        # Zero is "the default", as in SwarmKit (the API refuses a negative period).
        return (period if period > 0 else DEFAULT_HEARTBEAT_PERIOD) / SECOND_NS

    # Sessions

    async def register(self, node_id: str, message: Register) -> Registered:
        """Admit the agent of a node (named by its certificate) and mark the node Ready."""

        def ready(tx: Tx) -> None:
            node = tx.find(Node, node_id)
            if node is None:
                raise SessionRefused(f"node {node_id} has been removed from the swarm")
            status = NodeStatus(state=NodeState.READY, addr=message.addr)
            ready = node.replace(
                description=message.description,
                status=status,
                data_path_addr=message.data_addr or None,
            )
            if node.id == self._manager_node_id:
                ready = ready.replace(
                    manager_status=ManagerStatus(leader=True, addr=f"{message.addr}:2377")
                )
            tx.update(ready)

        await self._store.update(ready)
        self._last_seen[node_id] = self._clock.monotonic()
        return Registered(node_id=node_id, heartbeat_period=self.heartbeat_period)

    def attach(self, node_id: str, connection: AgentConnection) -> None:
        """Start pushing assignments to a registered agent (replacing an older session)."""
        self._connections[node_id] = connection
        self.logs.connected(node_id, connection)
        self._sent_networks.pop(node_id, None)
        self._sent_certificates.pop(node_id, None)
        # The network first: a task's attachment needs the host's bridge to exist.
        self._push_networks([node_id])
        self._push(node_id)
        self._push_certificates([node_id])

    def detach(self, node_id: str, connection: AgentConnection) -> None:
        # Only the session that is current may detach: a reconnect may have replaced it.
        self.logs.disconnected(node_id, connection)
        if self._connections.get(node_id) is connection:
            del self._connections[node_id]
            now = self._clock.monotonic()
            self._last_seen[node_id] = decide.seen_when_session_lost(
                self._last_seen.get(node_id, now), now, self.heartbeat_period
            )
            self._sent_networks.pop(node_id, None)
            self._sent_certificates.pop(node_id, None)

    async def receive(self, node_id: str, message: Message) -> None:
        """Any other message of an agent's: its TLS report, its log messages."""
        if isinstance(message, NodeTLS):
            await self.report_tls(node_id, message.tls_info)
        elif isinstance(message, LogsBatch | LogsDone):
            self.logs.received(node_id, message)

    async def report_tls(self, node_id: str, tls_info: TLSInfo) -> None:
        """The agent's report of what it trusts and who issued its certificate."""

        def describe(tx: Tx) -> None:
            node = tx.find(Node, node_id)
            if node is not None and node.description.tls_info != tls_info:
                described = node.description.replace(tls_info=tls_info)
                tx.update(node.replace(description=described))

        await self._store.update(describe)

    def _push_certificates(self, node_ids: Iterable[str]) -> None:
        """Tell connected nodes what to trust and whether to renew, once per change."""
        cluster = self._store.cluster()
        if cluster is None or not cluster.root_ca.ca_cert:
            return
        for node_id in node_ids:
            connection = self._connections.get(node_id)
            node = self._store.find(Node, node_id)
            if connection is None or node is None:
                continue
            update = certificate_update(node, cluster.root_ca)
            if update is None:
                self._sent_certificates.pop(node_id, None)
            elif self._sent_certificates.get(node_id) != update:
                self._sent_certificates[node_id] = update
                connection.send(update)

    def _end_session(self, node_id: str) -> None:
        """A removed node's session ends at once; its certificate opens no other."""
        connection = self._connections.pop(node_id, None)
        self._sent_networks.pop(node_id, None)
        self._sent_certificates.pop(node_id, None)
        self._last_seen.pop(node_id, None)
        if connection is not None:
            self.logs.disconnected(node_id, connection)
            connection.close()

    async def heartbeat(self, node_id: str) -> None:
        self._last_seen[node_id] = self._clock.monotonic()
        node = self._store.find(Node, node_id)
        # Read first without the transaction: nearly every heartbeat finds its node Ready,
        # and needs no turn at the store's writes.
        if node is None or node.status.state != NodeState.DOWN:
            return

        def back(tx: Tx) -> None:
            node = tx.find(Node, node_id)
            if node is not None and node.status.state == NodeState.DOWN:
                # Marked Down while its session stayed open (the manager stalled, a
                # partition healed): a heartbeat on a live session is proof enough that it
                # is back.
                ready = node.status.replace(state=NodeState.READY, message=None)
                tx.update(node.replace(status=ready))

        await self._store.update(back)

    def report_statuses(self, node_id: str, updates: Sequence[StatusUpdate]) -> None:
        """An agent's status report, written with every other report received in the next
        STATUS_BATCH_S, in one transaction (SwarmKit batches them the same way): with a
        thousand agents each reporting every step of its tasks, a commit per report was a
        commit (and a wake-up of every controller) per millisecond."""
        self._last_seen[node_id] = self._clock.monotonic()
        loop = asyncio.get_running_loop()
        if not self._reports:
            self._batch_started = loop.time()
        self._reports.append((node_id, updates))
        if self._writer is None:
            self._writer = loop.create_task(self._write_reports(), name="dispatcher-statuses")

    async def update_statuses(self, node_id: str, updates: Sequence[StatusUpdate]) -> None:
        """Write the accepted updates in one transaction now; stale or backward ones are
        dropped."""
        self._last_seen[node_id] = self._clock.monotonic()
        await self._write_statuses([(node_id, updates)])

    async def _write_reports(self) -> None:
        """Write the waiting reports, a batch at a time, until none wait. The only writer of
        batches: one commit at a time, in the order the reports came. Reports that come
        during a commit make the next batch."""
        loop = asyncio.get_running_loop()
        try:
            while self._reports:
                wait = self._batch_started + STATUS_BATCH_S - loop.time()
                if wait > 0 and not self._flush_now.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._flush_now.wait()
                reports, self._reports = self._reports, []
                try:
                    await self._write_statuses(reports)
                except SwarmletError as exc:  # the store closed under a stopping manager
                    log.info("dispatcher: %d status reports not written: %s", len(reports), exc)
        finally:
            self._writer = None

    async def _flush_reports(self) -> None:
        """Write the reports already received now, after the commit under way (if any)."""
        self._flush_now.set()
        try:
            while (writer := self._writer) is not None:
                # Shielded: a commit is not left half done by a second cancellation.
                await asyncio.shield(writer)
        finally:
            self._flush_now.clear()

    async def _write_statuses(self, reports: Iterable[tuple[str, Sequence[StatusUpdate]]]) -> None:
        def accept(tx: Tx) -> None:
            changed: dict[str, Task] = {}
            for node_id, updates in reports:
                for update in updates:
                    task = changed.get(update.task_id) or tx.find(Task, update.task_id)
                    if task is None:
                        continue
                    accepted = decide.accept_status(task, node_id, update.status)
                    if accepted is not None:
                        changed[task.id] = accepted
            tx.write(Op.update(task) for task in changed.values())

        commit = await self._store.update(accept)
        if commit.objects:
            self._reported.add(commit.revision)

    def _push(self, node_id: str) -> None:
        """Send the node its tasks, with exactly the secrets and configs they use."""
        connection = self._connections.get(node_id)
        if connection is not None:
            store = self._store
            tasks = decide.assignments(store.tasks_of_node(node_id))
            secrets, configs = decide.dependencies(
                tasks,
                {secret.id: secret for secret in store.all(Secret)},
                {config.id: config for config in store.all(Config)},
            )
            connection.send(Assignments(tasks=tasks, secrets=secrets, configs=configs))

    def _push_networks(self, node_ids: Iterable[str]) -> None:
        """Send each node its network state, when it differs from what it was last sent."""
        store = self._store
        cluster = networks.Cluster(
            nodes={node.id: node for node in store.all(Node)},
            networks={network.id: network for network in store.all(Network)},
            services={service.id: service for service in store.all(Service)},
            # Filtered once here rather than once per connected node.
            tasks=[t for t in store.all(Task) if t.networks_attachments and networks.is_present(t)],
            data_path_port=swarm.data_path_port if (swarm := store.cluster()) else VXLAN_PORT,
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
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._push_assignments(watch), name="dispatcher-assignments")
                group.create_task(self._check_heartbeats(), name="dispatcher-heartbeats")
        finally:
            await self._flush_reports()  # the reports already received are not lost

    async def _push_assignments(self, watch: Watch) -> None:
        try:
            async for batch in watch.batches():
                dirty: set[str] = set()
                renewing: set[str] = set()
                for event in batch:
                    if isinstance(event.obj, Task):
                        # A node's own report tells it nothing new, unless it releases secrets
                        # or configs: sending back all its tasks for every report was most of
                        # the agents' work with thousands of tasks. An attachment is never
                        # assigned: it changes only the network state.
                        if (
                            event.obj.node_id
                            and not event.obj.is_attachment
                            and (
                                not self._reported.made(event.revision)
                                or decide.releases_dependencies(event.obj)
                            )
                        ):
                            dirty.add(event.obj.node_id)
                    elif isinstance(event.obj, Secret | Config):
                        # Sent again to the nodes it went to (only its labels can change).
                        dirty |= decide.nodes_using(event.obj.id, self._store.all(Task))
                    elif isinstance(event.obj, Node) and event.action is Action.DELETE:
                        self._end_session(event.obj.id)
                    elif isinstance(event.obj, Node):
                        renewing.add(event.obj.id)
                    elif isinstance(event.obj, Cluster):
                        renewing.update(self._connections)
                self._push_certificates(renewing)
                if any(_touches_networks(event.obj) for event in batch):
                    self._push_networks(list(self._connections))
                for node_id in dirty:
                    self._push(node_id)
        finally:
            watch.close()

    async def _check_heartbeats(self) -> None:
        while True:
            period = self.heartbeat_period
            # Wake when the first grace runs out (a little after, so that it has), not on a
            # fixed tick: a tick would add up to its length to the time a node shows Down.
            wait = decide.next_expiry(
                self._store.all(Node), self._last_seen, self._clock.monotonic(), period
            )
            await self._clock.sleep(min(wait, period) + 0.01)
            await self._mark_down(self._clock.monotonic(), period)

    async def _mark_down(self, now: float, period: float) -> None:
        """Mark Down the nodes whose grace ran out by ``now``."""

        def mark_down(tx: Tx) -> list[Node]:
            down = decide.expired_nodes(tx.all(Node), self._last_seen, now, period)
            status = NodeStatus(state=NodeState.DOWN, message="heartbeat failure")
            for node in down:
                tx.update(node.replace(status=status.replace(addr=node.status.addr)))
            return down

        down = (await self._store.update(mark_down)).value
        if down:
            log.info("nodes down: %s", ", ".join(node.id for node in down))


def _touches_networks(obj: StoredObject) -> bool:
    """Whether a change may change some host's network state (most task changes do not)."""
    if isinstance(obj, Task):
        return bool(obj.networks_attachments)
    # A node's change may take its addresses away (the event shows only the new object).
    return isinstance(obj, Network | Service | Node)
