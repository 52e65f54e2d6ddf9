from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.orchestrator import controllers
from swarmlet.manager.store import MemoryBackend, Store
from tests.manager.orchestrator.builders import FakeCluster


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    """A fake cluster with every orchestrator controller running against it."""
    clock = FakeClock()
    store = Store(MemoryBackend(), clock)
    running = [
        asyncio.create_task(controller.run(), name=type(controller).__name__)
        for controller in controllers(store, clock)
    ]
    fake = FakeCluster(store, clock)
    await fake.settle()
    yield fake
    for job in running:
        if job.done():
            job.result()  # a controller that died fails the test
        job.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    store.close()
