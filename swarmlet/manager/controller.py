"""The one runtime every manager controller runs on.

A controller takes a snapshot and a watch of the store in one step, lets its event handler
only mark what is dirty, and acts once per batch of events (or when a timer of its own is
due, or when poked from outside the store), writing once. One that does not follow the store
(``follows_store = False``: the dispatcher's status writer and heartbeat checker) takes no
snapshot nor watch; only a poke or its timer wakes it. What is the same for all of them lives
here:

- the loop itself, and its end: cancelling ``run`` stops it wherever it waits (the leader
  starts and stops every controller the same way);
- the injected clock for timers and the debounce, so tests drive time;
- own-commit filtering: what the controller wrote itself comes back as events, and by
  default it passes over them (``sees_own_commits``); another controller may pass over them
  too, asking ``made`` (the dispatcher's pusher, over the status writer's commits);
- ``write(fn)``: the controller's one way to write, a store transaction whose revision is
  remembered as its own.

A controller says only what is its own: ``start`` (mark everything at the snapshot), ``mark``
(one event), ``act`` (one pass) and, if it has timers, ``timeout``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

from swarmlet.clock import Clock
from swarmlet.manager.store import Commit, Event, Op, OwnCommits, Store, Tx, Watch

R = TypeVar("R")


async def next_events(
    watch: Watch | None, clock: Clock, wait: float | None, poked: asyncio.Event
) -> list[Event] | None:
    """The next batch of events: everything waiting once one has arrived, or an empty batch
    when ``wait`` seconds on ``clock`` pass first (None: no limit) or ``poked`` is set; None
    once the watch is closed. Without a watch (a controller that follows no store), an empty
    batch once poked or the wait is over. (Not ``asyncio.timeout``: the wait is on the
    injected clock.)"""
    if poked.is_set():
        return watch.drain() if watch is not None else []
    if wait is not None and wait <= 0:
        await asyncio.sleep(0)  # a due timer must not starve the event loop
        return watch.drain() if watch is not None else []
    waiters: set[asyncio.Task[object]] = {asyncio.create_task(poked.wait(), name="controller-poke")}
    getter = None
    if watch is not None:
        getter = asyncio.create_task(watch.next(), name="controller-watch")
        waiters.add(getter)
    if wait is not None:
        waiters.add(asyncio.create_task(clock.sleep(wait), name="controller-timer"))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
        # Wait for all to finish; a cancelled queue read loses no event.
        await asyncio.wait(waiters)
    if watch is None or getter is None:
        return []
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
    # Whether the controller follows the store (a snapshot, then a watch); one that does not
    # is woken only by ``poke`` or its ``timeout`` (and ``mark`` is never called).
    follows_store: ClassVar[bool] = True
    # Whether another controller passes over this one's commits (asking ``made``): they are
    # remembered though this one follows no store. (One asker only: ``made`` forgets what it
    # has been asked past.)
    shares_own_commits: ClassVar[bool] = False
    # The most ops ``write_ops`` puts in one transaction. A pass may decide about tens of
    # thousands of tasks, and etcd keeps a transaction as one entry of its log, which it can
    # read back only under 10 MB (docs/store.md, "Limits"): 5,000 tasks are about 1.3 MB
    # there. Each decided op carries the version it was read at, so a pass written in parts
    # is as safe as one written whole; a part refused is decided again on a later pass.
    max_ops_per_transaction: int = 5_000

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._own = OwnCommits()
        self._poked = asyncio.Event()

    async def run(self) -> None:
        watch = self._store.snapshot().watch if self.follows_store else None
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
                    if watch is not None:
                        self._mark_all(watch.drain())
        finally:
            if watch is not None:
                watch.close()

    def _mark_all(self, events: list[Event]) -> None:
        for event in events:
            if self.sees_own_commits or not self.made(event.revision):
                self.mark(event)

    def poke(self) -> None:
        """Wake the loop for a pass: something outside the store changed (a caller marks it
        first)."""
        self._poked.set()

    async def write(self, fn: Callable[[Tx], R]) -> Commit[R]:
        """A store transaction whose events the controller knows as its own."""
        commit = await self._store.update(fn)
        if commit.objects and (self.follows_store or self.shares_own_commits):
            self._own.add(commit.revision)
        return commit

    async def write_ops(self, ops: Sequence[Op]) -> None:
        """Write ops decided outside a transaction, in transactions of at most
        ``max_ops_per_transaction`` each, in order; the first refused raises (the parts
        before it stay written)."""
        size = self.max_ops_per_transaction
        for start in range(0, len(ops), size):
            part = ops[start : start + size]
            await self.write(lambda tx, part=part: tx.write(part))  # type: ignore[misc]

    def made(self, revision: int) -> bool:
        """Whether the commit of ``revision`` is one of this controller's own. Asked in
        revision order, by one asker: its own loop, or the controller that passes over its
        commits (see ``shares_own_commits``)."""
        return self._own.made(revision)

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
