"""A container's health as the engine says it, followed without missing a change.

``follow_health`` keeps a task controller told of its container's health
(``State.Health.Status``) for as long as it runs. It reads ``Engine.watch_health``: the
engine's ``health_status`` events, on a stream opened before the health is read by inspect,
so a change between the two is in the stream. A stream is opened again, and the health read
afresh, when it ends (an engine restart), after an unreachable engine, and every
``HEALTH_RESYNC`` regardless: the engine drops events for a subscriber that falls behind, and a
lost ``healthy`` must cost that at most, never a task STARTING for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum

from swarmlet.agent.engine import Engine
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.errors import NotFound, SwarmletError

log = logging.getLogger(__name__)

HEALTH_RESYNC = 10.0  # seconds
RETRY_INITIAL = 0.5
RETRY_MAX = 10.0


class Health(StrEnum):
    """The container's health as the engine's inspect says it (State.Health.Status)."""

    NONE = ""  # no healthcheck (none in its spec or image, or Test ["NONE"])
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"

    @classmethod
    def of(cls, status: str) -> Health:
        try:
            return cls(status)
        except ValueError:
            return cls.NONE


async def follow_health(
    engine: Engine, clock: Clock, container: str, report: Callable[[Health], None]
) -> None:
    """Report the container's health, as it is and at every change (the same one may come
    more than once), until cancelled or the container is gone."""
    retry = RETRY_INITIAL
    while True:
        try:
            await _follow_for_a_while(engine, clock, container, report)
            retry = RETRY_INITIAL
        except NotFound:
            return  # the container is gone: its exit is someone else's to report
        except SwarmletError as exc:
            log.warning("following the health of %s: %s", container, exc.message)
            await clock.sleep(retry)
            retry = min(retry * 2, RETRY_MAX)


async def _follow_for_a_while(
    engine: Engine, clock: Clock, container: str, report: Callable[[Health], None]
) -> None:
    """One stream: until it ends, or ``HEALTH_RESYNC`` has passed."""

    async def follow() -> None:
        async for health in engine.watch_health(container):
            report(Health.of(health))

    follower = asyncio.create_task(follow(), name=f"follow-health-{container}")
    resync = asyncio.create_task(clock.sleep(HEALTH_RESYNC), name=f"resync-health-{container}")
    try:
        await asyncio.wait({follower, resync}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for job in (follower, resync):
            if not job.done():
                await cancel_and_wait(job)
    if not follower.cancelled() and follower.exception() is not None:
        follower.result()  # its error: retried, or the end for NotFound
