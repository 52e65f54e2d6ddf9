"""The one runtime every manager controller runs on.

A controller takes a snapshot and a watch of the store in one step, lets its event handler
only mark what is dirty, and acts once per batch of events (or when a timer of its own is
due, or when poked from outside the store), writing once. What is the same for all of them
lives here:

- the loop itself, and its end: cancelling ``run`` stops it wherever it waits (the leader
  starts and stops every controller the same way);
- the injected clock for timers and the debounce, so tests drive time;
- own-commit filtering: what the controller wrote itself comes back as events, and by
  default it passes over them (``sees_own_commits``);
- ``write(fn)``: the controller's one way to write, a store transaction whose revision is
  remembered as its own.

A controller says only what is its own: ``start`` (mark everything at the snapshot), ``mark``
(one event), ``act`` (one pass) and, if it has timers, ``timeout``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeVar

from swarmlet.clock import Clock
from swarmlet.manager.store import Commit, Event, OwnCommits, Store, Tx, Watch

R = TypeVar("R")


async def next_events(
    watch: Watch, clock: Clock, wait: float | None, poked: asyncio.Event | None = None
) -> list[Event] | None:
    """The next batch of events: everything waiting once one has arrived, or an empty batch
    when ``wait`` seconds on ``clock`` pass first (None: no limit) or ``poked`` is set; None
    once the watch is closed. (Not ``asyncio.timeout``: the wait is on the injected clock.)"""
    if poked is not None and poked.is_set():
        return watch.drain()
    if wait is not None and wait <= 0:
        await asyncio.sleep(0)  # a due timer must not starve the event loop
        return watch.drain()
    if wait is None and poked is None:
        first = await watch.next()
        return None if first is None else [first, *watch.drain()]
    getter = asyncio.create_task(watch.next(), name="controller-watch")
    others: set[asyncio.Task[object]] = set()
    if wait is not None:
        others.add(asyncio.create_task(clock.sleep(wait), name="controller-timer"))
    if poked is not None:
        others.add(asyncio.create_task(poked.wait(), name="controller-poke"))
    try:
        await asyncio.wait({getter, *others}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (getter, *others):
            task.cancel()
        # Wait for all to finish; a cancelled queue read loses no event.
        await asyncio.wait({getter, *others})
    if getter.cancelled():
        return watch.drain()
    first = getter.result()
    return None if first is None else [first, *watch.drain()]


class Controller(ABC):
    # Seconds to wait, after a batch of events, for more to arrive, so that a burst of
    # commits is handled in one pass (0: act at once).
    debounce: float = 0.0
    # Whether the controller's own commits come back to ``mark`` (most pass over them: a
    # pass leaves things as it wants them).
    sees_own_commits: ClassVar[bool] = False

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._own = OwnCommits()
        self._poked = asyncio.Event()

    async def run(self) -> None:
        snapshot = self._store.snapshot()
        watch = snapshot.watch
        try:
            # ``start`` reads the store before anything is awaited: it sees the snapshot's
            # revision.
            self.start()
            while True:
                self._poked.clear()
                await self.act()
                events = await next_events(watch, self._clock, self.timeout(), self._poked)
                if events is None:
                    return
                self._mark_all(events)
                if self.debounce > 0 and (events or self._poked.is_set()):
                    await self._clock.sleep(self.debounce)
                    self._mark_all(watch.drain())
        finally:
            watch.close()

    def _mark_all(self, events: list[Event]) -> None:
        for event in events:
            if self.sees_own_commits or not self._own.made(event.revision):
                self.mark(event)

    def poke(self) -> None:
        """Wake the loop for a pass: something outside the store changed (a caller marks it
        first)."""
        self._poked.set()

    async def write(self, fn: Callable[[Tx], R]) -> Commit[R]:
        """A store transaction whose events the controller knows as its own."""
        commit = await self._store.update(fn)
        if commit.objects:
            self._own.add(commit.revision)
        return commit

    @abstractmethod
    def start(self) -> None:
        """Mark everything there is to look at when the loop starts."""

    @abstractmethod
    def mark(self, event: Event) -> None:
        """Note what the event makes dirty; decide nothing."""

    @abstractmethod
    async def act(self) -> None:
        """One pass: decide over what is dirty (or due) and write once."""

    def timeout(self) -> float | None:
        """Seconds until a timer is due, or None when none waits."""
        return None
