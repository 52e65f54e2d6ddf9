"""Time is injected: loops read a Clock, tests drive a FakeClock instead of sleeping."""

from __future__ import annotations

import asyncio
import heapq
import time
from datetime import UTC, datetime
from typing import Protocol


def rfc3339(moment: datetime) -> str:
    """A timestamp as the Engine API writes them (UTC, with a Z)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, for timestamps users see."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines and periods."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when ``advance`` is called; sleepers wake in deadline order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def now(self) -> datetime:
        from datetime import timedelta

        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._elapsed + max(seconds, 0.0), self._seq, future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has passed, in order."""
        target = self._elapsed + seconds
        # Let tasks that are about to sleep reach their sleep before time moves.
        await _let_others_run()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._elapsed = max(self._elapsed, deadline)
            if not future.done():
                future.set_result(None)
            # Let the woken task run before time moves on.
            await _let_others_run()
        self._elapsed = target


async def _let_others_run() -> None:
    for _ in range(10):
        await asyncio.sleep(0)
