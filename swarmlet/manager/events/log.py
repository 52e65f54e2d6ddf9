"""The swarm's events: made from the store's watch, kept for a while, given to subscribers.

A manager runs one ``SwarmEvents`` per store (``Manager.run``); the Engine API finds it with
``swarm_events_for`` and merges what it gives with the engine's own events
(``swarmlet.manager.api.events``).

The watch gives each change's new object only, so the log keeps the current object of every
kind that has events (services, nodes, networks, secrets, configs; never tasks) to compare an
update with: references to the objects the store holds, so no copy. The last
``HISTORY`` events are kept for ``docker events --since``, as the engine keeps its last 256;
a subscriber too slow to take ``QUEUE`` events misses the newer ones until it catches up
(moby's publisher skips a subscriber that does not take an event within 100 ms).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from types import TracebackType

from swarmlet.clock import Clock
from swarmlet.manager.events.convert import EVENT_TYPES, swarm_event
from swarmlet.manager.events.message import EventMessage
from swarmlet.manager.store import Action, Event, Store
from swarmlet.models import StoredObject

HISTORY = 256
QUEUE = 1024

_Key = tuple[type[StoredObject], str]


class Subscription:
    """The events kept when it was made (``past``), then every new one, until closed."""

    def __init__(self, owner: SwarmEvents, past: list[EventMessage]) -> None:
        self._owner = owner
        self.past = past
        self._queue: asyncio.Queue[EventMessage] = asyncio.Queue(maxsize=QUEUE)
        self.missed = 0

    def _offer(self, event: EventMessage) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.missed += 1

    async def next(self) -> EventMessage:
        return await self._queue.get()

    def close(self) -> None:
        self._owner._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class SwarmEvents:
    def __init__(self, store: Store, clock: Clock, history: int = HISTORY) -> None:
        self._store = store
        self._clock = clock
        self._history: deque[EventMessage] = deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self._current: dict[_Key, StoredObject] = {}

    def subscribe(self) -> Subscription:
        """The kept events and every one from now on (nothing missed between the two)."""
        subscription = Subscription(self, list(self._history))
        self._subscribers.add(subscription)
        return subscription

    async def run(self) -> None:
        snapshot = self._store.snapshot()
        try:
            self._current = {
                (kind, obj.id): obj for kind in EVENT_TYPES for obj in self._store.all(kind)
            }
            async for batch in snapshot.watch.batches():
                for event in batch:
                    self.record(event)
        finally:
            snapshot.watch.close()

    def record(self, event: Event) -> None:
        """One change of the store, as its event (if its kind has events)."""
        kind = event.kind  # (a task another manager wrote stays unread: tasks have none)
        if kind not in EVENT_TYPES:
            return
        key = (kind, event.object_id)
        if event.action is Action.DELETE:
            old = self._current.pop(key, None)
        else:
            old = self._current.get(key)
            self._current[key] = event.obj
        message = swarm_event(event.action, event.obj, old, self._clock.now())
        if message is not None:
            self.publish(message)

    def publish(self, message: EventMessage) -> None:
        self._history.append(message)
        for subscriber in self._subscribers:
            subscriber._offer(message)


_LOGS: weakref.WeakKeyDictionary[Store, SwarmEvents] = weakref.WeakKeyDictionary()


def swarm_events_for(store: Store, clock: Clock) -> SwarmEvents:
    """The events of the store (made on first use: the API may ask before the manager runs
    it)."""
    events = _LOGS.get(store)
    if events is None:
        events = _LOGS[store] = SwarmEvents(store, clock)
    return events
