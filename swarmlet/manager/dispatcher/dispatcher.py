"""The dispatcher: agent sessions, heartbeats, assignments and task status.

It admits agents (nodes the CA gave a certificate, named by it), keeps the
time of each node's last heartbeat in memory (writing the store only when a node changes
state), pushes to every connected agent the full set of its tasks whenever they change (with
the secrets and configs those tasks use, and no other), and writes the agents' status
updates in one transaction per batch. Its three loops are controllers on the one runtime
(``swarmlet.manager.controller``): the assignment pusher (``assignments.py``), the heartbeat
checker (``heartbeats.py``) and the status writer (``statuses.py``).

It serves sessions only while ``run`` runs (``leading``: the manager's term as leader); when
the term ends, every session is closed, and its agent moves to the next manager.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.manager.dispatcher import decide
from swarmlet.manager.dispatcher.assignments import AgentConnection, AssignmentPusher
from swarmlet.manager.dispatcher.heartbeats import HeartbeatChecker, heartbeat_period
from swarmlet.manager.dispatcher.logs import broker_for
from swarmlet.manager.dispatcher.statuses import StatusWriter
from swarmlet.manager.store import Store, Tx
from swarmlet.models import (
    ManagerStatus,
    Node,
    NodeState,
    NodeStatus,
    TLSInfo,
)
from swarmlet.protocol import (
    LogsBatch,
    LogsDone,
    Message,
    NodeTLS,
    Register,
    Registered,
    StatusUpdate,
)

__all__ = ["TERM_ENDED", "AgentConnection", "Dispatcher", "SessionRefused"]


# Why the sessions close when the manager's term as leader ends.
TERM_ENDED = "this manager is no longer the leader"


class SessionRefused(SwarmletError):
    """The agent may not open a session (its node was removed)."""


class Dispatcher:
    def __init__(self, store: Store, clock: Clock, node_id: str = "") -> None:
        self._store = store
        self._clock = clock
        # The manager's own node: it is the leader (there is one manager for now).
        self._manager_node_id = node_id
        # ``docker service logs``: subscriptions sent on the sessions, answers routed back.
        self.logs = broker_for(store, clock)
        start = clock.monotonic()
        # Every known node gets a full grace period from the manager's start to reconnect.
        self._last_seen: dict[str, float] = {node.id: start for node in store.all(Node)}
        # Whether ``run`` runs: only the leader's port opens sessions (``server.py``).
        self._leading = False
        # The three loops, each a controller (``run`` runs them; the heartbeat checker is
        # made there, on the term's fenced store).
        self._statuses = StatusWriter(store, clock)
        self._pusher = AssignmentPusher(store, clock, self._statuses, self._end_session)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def heartbeat_period(self) -> float:
        return heartbeat_period(self._store)

    @property
    def leading(self) -> bool:
        """Whether the loops run (the manager's term as leader lasts): sessions are served
        only then."""
        return self._leading

    # Sessions

    async def register(self, node_id: str, message: Register) -> Registered:
        """Admit the agent of a node (named by its certificate) and mark the node Ready (a
        manager node whose address is not known yet gets it: its port on the agent's address,
        what agents are told in ``Managers``)."""

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
            elif node.manager_status is not None and not node.manager_status.addr and message.addr:
                addr = f"{message.addr}:2377"
                ready = ready.replace(manager_status=node.manager_status.replace(addr=addr))
            tx.update(ready)

        await self._store.update(ready)
        self._last_seen[node_id] = self._clock.monotonic()
        return Registered(node_id=node_id, heartbeat_period=self.heartbeat_period)

    def attach(self, node_id: str, connection: AgentConnection) -> None:
        """Start pushing assignments to a registered agent (replacing an older session)."""
        self.logs.connected(node_id, connection)
        self._pusher.connect(node_id, connection)

    def detach(self, node_id: str, connection: AgentConnection) -> None:
        # Only the session that is current may detach: a reconnect may have replaced it.
        self.logs.disconnected(node_id, connection)
        if self._pusher.disconnect(node_id, connection):
            now = self._clock.monotonic()
            self._last_seen[node_id] = decide.seen_when_session_lost(
                self._last_seen.get(node_id, now), now, self.heartbeat_period
            )

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

    def _end_session(self, node_id: str) -> None:
        """A removed node's session ends at once; its certificate opens no other."""
        connection = self._pusher.end(node_id)
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
        ``STATUS_BATCH_S``, in one transaction (by the status writer, while ``run`` runs)."""
        self._last_seen[node_id] = self._clock.monotonic()
        self._statuses.report(node_id, updates)

    async def update_statuses(self, node_id: str, updates: Sequence[StatusUpdate]) -> None:
        """Write the accepted updates in one transaction now; stale or backward ones are
        dropped."""
        self._last_seen[node_id] = self._clock.monotonic()
        await self._statuses.write_reports([(node_id, updates)])

    # The loops

    async def run(self, fenced: Store | None = None) -> None:
        """The assignment pusher, the heartbeat checker and the status writer, until
        cancelled (the leader's term ended, or the manager stops). Sessions are served for as
        long as it runs: when it ends, every one is closed (its agent goes to the next
        manager), and the status writer writes the reports already received.

        ``fenced``: the store as the term writes to it (``Store.fenced``), for the heartbeat
        checker, whose writes come from a timer rather than from an agent: a leader paused
        past its lease and woken finds every node's last heartbeat old, and its checker's
        timer is due before its election has seen the term end; fenced, that pass marks no
        node Down (it raises ``TermEnded``, which ends the term)."""
        heartbeats = HeartbeatChecker(fenced or self._store, self._clock, self._last_seen)
        self._leading = True
        # Every known node gets a full grace from the term's start: its agent was on the last
        # leader (or on none) until now, and has to find this one.
        now = self._clock.monotonic()
        for node in self._store.all(Node):
            self._last_seen[node.id] = now
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pusher.run(), name="dispatcher-assignments")
                group.create_task(heartbeats.run(), name="dispatcher-heartbeats")
                group.create_task(self._statuses.run(), name="dispatcher-statuses")
        finally:
            self._leading = False
            self._end_sessions()
            # Also when the writer was cancelled before it began (``run`` cancelled at once).
            await self._statuses.flush()

    def _end_sessions(self) -> None:
        """The term ended: every session is closed, so that its agent finds the next leader."""
        for node_id, connection in self._pusher.end_all().items():
            self.logs.disconnected(node_id, connection)
            connection.close(TERM_ENDED)
