"""Small asyncio helpers for structured concurrency."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[object]) -> None:
    """Cancel a child task and wait for it to end, without swallowing our own cancellation.

    An error the child ended with is logged, not raised: the caller is already tearing down.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        log.exception("task %s failed while being stopped", task.get_name())
