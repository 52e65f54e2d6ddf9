"""The log broker: ``docker service logs`` subscriptions, sent to the agents on their sessions,
and the agents' log messages routed back to the request that asked (SwarmKit's logbroker).

A subscription asks every node that has a task of the selected services or tasks
(``plan``): the nodes with a session get a ``LogsSubscribe``, the others are reported as
unavailable, tasks with no node yet as not scheduled. Without ``follow`` it ends when every
asked node has said done, lost its session, or stayed silent ``NODE_SILENCE`` seconds (a node
that stops answering never hangs the request; Swarm hangs there: moby#33183). Following, it
never ends by itself: a node that gets a selected task later, or comes back, is asked then.

The Engine API (``swarmlet.manager.api.logs``) finds the broker of the store it serves with
``broker_for``: the dispatcher that holds the sessions makes it for its store.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping, Set
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.ids import new_id
from swarmlet.manager.store import Store, Watch
from swarmlet.models import Node, NodeState, Task, TaskState
from swarmlet.protocol import (
    LogEntry,
    LogsBatch,
    LogsCancel,
    LogsDone,
    LogsSubscribe,
    Message,
)

log = logging.getLogger(__name__)

# Seconds a node asked for logs (not following) may stay silent before it is given up.
NODE_SILENCE = 3.0
# How long a reader waits for messages before it hears [] (and silent nodes are checked).
TICK = 0.75
# SwarmKit's words (manager/logbroker/broker.go, subscription.go).
UNAVAILABLE = "node {} is not available"
DISCONNECTED = "node {} disconnected unexpectedly"
UNSCHEDULED = "task {} has not been scheduled"
INCOMPLETE = (
    "warning: incomplete log stream. some logs could not be retrieved for the following reasons: "
)


class Connection(Protocol):
    """A node's session, as the broker sends on it (``dispatcher.AgentConnection``)."""

    def send(self, message: Message) -> None: ...


@dataclass(frozen=True)
class LogSelector:
    service_ids: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()

    def selects(self, task: Task) -> bool:
        return task.service_id in self.service_ids or task.id in self.task_ids


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    # The last lines of each task; None: all.
    tail: int | None = None
    # Unix seconds[.nanoseconds]; '' for no bound.
    since: str = ""
    stdout: bool = True
    stderr: bool = True


@dataclass(frozen=True)
class Plan:
    ask: frozenset[str]
    unavailable: tuple[str, ...]
    unscheduled: tuple[str, ...]


def available(node: Node | None, connected: Set[str]) -> bool:
    return node is not None and node.id in connected and node.status.state != NodeState.DOWN


def plan(
    selector: LogSelector,
    follow: bool,
    tasks: Iterable[Task],
    nodes: Mapping[str, Node],
    connected: Set[str],
) -> Plan:
    """Which nodes to ask for the selected tasks' logs (as SwarmKit's subscription.match):
    a service's tasks not yet running are left out unless following; a task named by the
    selector is always in."""
    wanted: set[str] = set()
    unscheduled: list[str] = []
    for task in tasks:
        if not selector.selects(task):
            continue
        by_service = task.id not in selector.task_ids
        if by_service and not follow and task.state.rank < TaskState.RUNNING.rank:
            continue
        if not task.node_id:
            unscheduled.append(task.id)
        else:
            wanted.add(task.node_id)
    ask = frozenset(n for n in wanted if available(nodes.get(n), connected))
    return Plan(ask, tuple(sorted(wanted - ask)), tuple(sorted(unscheduled)))


def incomplete(errors: Iterable[str]) -> str:
    """The error a stream ends with when some logs could not be read ('' when none)."""
    reasons = list(errors)
    return INCOMPLETE + ", ".join(reasons) if reasons else ""


@dataclass
class Subscription:
    id: str
    selector: LogSelector
    options: LogOptions
    clock: Clock
    # The nodes asked; not following, those not done yet, with when they were last heard.
    asked: set[str] = field(default_factory=set)
    waiting: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unscheduled: tuple[str, ...] = ()
    _queue: asyncio.Queue[tuple[str, list[LogEntry]]] = field(default_factory=asyncio.Queue)

    def message(self) -> LogsSubscribe:
        options = self.options
        return LogsSubscribe(
            id=self.id,
            service_ids=list(self.selector.service_ids),
            task_ids=list(self.selector.task_ids),
            follow=options.follow,
            tail=options.tail,
            since=options.since,
            stdout=options.stdout,
            stderr=options.stderr,
        )

    def asking(self, node_id: str) -> None:
        self.asked.add(node_id)
        if not self.options.follow:
            self.waiting[node_id] = self.clock.monotonic()

    def received(self, node_id: str, entries: list[LogEntry]) -> None:
        if node_id in self.waiting:
            self.waiting[node_id] = self.clock.monotonic()
        if node_id in self.asked:
            self._queue.put_nowait((node_id, entries))

    def done(self, node_id: str, error: str = "") -> None:
        """The node has sent all it will (following, it stays asked: it may come back)."""
        if error:
            self.errors.append(error)
        self.waiting.pop(node_id, None)
        self._queue.put_nowait((node_id, []))  # wakes the reader

    @property
    def finished(self) -> bool:
        return not self.options.follow and not self.waiting and self._queue.empty()

    def error(self) -> str:
        return incomplete([*self.errors, *(UNSCHEDULED.format(t) for t in self.unscheduled)])

    async def next(self) -> list[tuple[str, list[LogEntry]]] | None:
        """The log messages received since the last call, waiting up to ``TICK`` seconds for
        some ([] when none came: the reader may check its client); None once finished."""
        while not self.finished:
            try:
                async with asyncio.timeout(TICK):
                    first = await self._queue.get()
            except TimeoutError:
                self._give_up_silent()
                return []
            items = [first]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            return [(node, entries) for node, entries in items if entries]
        return None

    def _give_up_silent(self) -> None:
        now = self.clock.monotonic()
        for node_id, heard in list(self.waiting.items()):
            if now - heard >= NODE_SILENCE:
                log.info("logs %s: node %s silent for %.0f s", self.id, node_id, now - heard)
                self.done(node_id, UNAVAILABLE.format(node_id))


class LogBroker:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._connections: dict[str, Connection] = {}
        self._subscriptions: dict[str, Subscription] = {}

    # The dispatcher's sessions

    def connected(self, node_id: str, connection: Connection) -> None:
        """A node's session opened: the subscriptions following its tasks are sent to it."""
        self._connections[node_id] = connection
        following = [s for s in self._subscriptions.values() if s.options.follow]
        if not following:
            return
        tasks = self._store.tasks_of_node(node_id)
        for subscription in following:
            if any(subscription.selector.selects(task) for task in tasks):
                subscription.asking(node_id)
                connection.send(subscription.message())

    def disconnected(self, node_id: str, connection: Connection) -> None:
        if self._connections.get(node_id) is not connection:
            return  # a newer session replaced it
        del self._connections[node_id]
        for subscription in self._subscriptions.values():
            if node_id in subscription.waiting:
                subscription.done(node_id, DISCONNECTED.format(node_id))

    def received(self, node_id: str, message: LogsBatch | LogsDone) -> None:
        subscription = self._subscriptions.get(message.id)
        if subscription is None:
            return  # ended already
        if isinstance(message, LogsBatch):
            subscription.received(node_id, message.entries)
        elif node_id in subscription.asked:
            subscription.done(node_id, message.error)

    # The API's requests

    @asynccontextmanager
    async def subscribe(
        self, selector: LogSelector, options: LogOptions
    ) -> AsyncIterator[Subscription]:
        """A subscription, sent to the nodes now; cancelled on them when the block ends."""
        subscription = Subscription(new_id(), selector, options, self._clock)
        # Subscribed before anything is read, so that no task assigned from now on is missed.
        watch = self._store.watch() if options.follow else None
        store = self._store
        decided = plan(
            selector,
            options.follow,
            self._tasks(selector),
            {node.id: node for node in store.all(Node)},
            set(self._connections),
        )
        subscription.errors.extend(UNAVAILABLE.format(node) for node in decided.unavailable)
        subscription.unscheduled = decided.unscheduled
        self._subscriptions[subscription.id] = subscription
        for node_id in sorted(decided.ask):
            subscription.asking(node_id)
            self._connections[node_id].send(subscription.message())
        watcher = None
        if watch is not None:
            watcher = asyncio.create_task(
                self._follow_tasks(subscription, watch), name=f"logs-{subscription.id}"
            )
        try:
            yield subscription
        finally:
            # All of it before the first await: the request's task may be being cancelled.
            del self._subscriptions[subscription.id]
            for node_id in subscription.asked:
                connection = self._connections.get(node_id)
                if connection is not None:
                    connection.send(LogsCancel(id=subscription.id))
            if watch is not None:
                watch.close()
            if watcher is not None:
                await cancel_and_wait(watcher)

    def _tasks(self, selector: LogSelector) -> list[Task]:
        tasks = [t for s in selector.service_ids for t in self._store.tasks_of_service(s)]
        for task_id in selector.task_ids:
            task = self._store.find(Task, task_id)
            if task is not None:
                tasks.append(task)
        return tasks

    async def _follow_tasks(self, subscription: Subscription, watch: Watch) -> None:
        """Following: a node that gets a selected task is asked too."""
        async for batch in watch.batches():
            for event in batch:
                task = event.obj
                if not isinstance(task, Task) or not subscription.selector.selects(task):
                    continue
                node_id = task.node_id
                if not node_id or node_id in subscription.asked:
                    continue
                connection = self._connections.get(node_id)
                if connection is not None:
                    subscription.asking(node_id)
                    connection.send(subscription.message())


_BROKERS: weakref.WeakKeyDictionary[Store, LogBroker] = weakref.WeakKeyDictionary()


def broker_for(store: Store, clock: Clock) -> LogBroker:
    """The log broker of the store's dispatcher (made on first use: the API asks for it
    before a dispatcher runs, when the manager has just started)."""
    broker = _BROKERS.get(store)
    if broker is None:
        broker = _BROKERS[store] = LogBroker(store, clock)
    return broker
