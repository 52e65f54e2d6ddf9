"""The shape every orchestrator controller shares: snapshot and watch in one step, let event
handlers only mark what is dirty, act once per batch of events (or when a timer is due), and
write in one commit from one method."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from swarmlet.clock import Clock
from swarmlet.manager.store import Event, Store, Watch


async def next_events(watch: Watch, clock: Clock, wait: float | None) -> list[Event] | None:
    """The next batch of events: everything waiting once one has arrived, or an empty batch
    when ``wait`` seconds on ``clock`` pass first (None: no limit); None once the watch is
    closed. (Not ``asyncio.timeout``: the wait is on the injected clock.)"""
    if wait is None:
        first = await watch.next()
        return None if first is None else [first, *watch.drain()]
    if wait <= 0:
        await asyncio.sleep(0)  # a due timer must not starve the event loop
        return watch.drain()
    getter = asyncio.create_task(watch.next(), name="orchestrator-watch")
    sleeper = asyncio.create_task(clock.sleep(wait), name="orchestrator-timer")
    try:
        await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        getter.cancel()
        sleeper.cancel()
        # Wait for both to finish; a cancelled queue read loses no event.
        await asyncio.wait({getter, sleeper})
    if getter.cancelled():
        return watch.drain()
    first = getter.result()
    return None if first is None else [first, *watch.drain()]


class ControlLoop(ABC):
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def run(self) -> None:
        snapshot = self._store.snapshot()
        try:
            # Nothing commits between the snapshot and these reads: they see its revision.
            self.start()
            while True:
                self.act()
                events = await next_events(snapshot.watch, self._clock, self.timeout())
                if events is None:
                    return
                for event in events:
                    self.mark(event)
        finally:
            snapshot.watch.close()

    @abstractmethod
    def start(self) -> None:
        """Mark everything there is to look at when the loop starts."""

    @abstractmethod
    def mark(self, event: Event) -> None:
        """Note what the event makes dirty; decide nothing."""

    @abstractmethod
    def act(self) -> None:
        """One pass: decide over what is dirty (or due) and write once."""

    def timeout(self) -> float | None:
        """Seconds until a timer is due, or None when none waits."""
        return None
