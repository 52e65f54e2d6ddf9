from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from swarmlet.clock import FakeClock
from swarmlet.manager.api import make_app
from swarmlet.manager.store import Store
from tests.manager.api.fakes import FakeControl, manager_control


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Store:
    return Store(clock=clock)


@pytest.fixture
def control(store: Store, clock: FakeClock) -> FakeControl:
    control = manager_control(store)
    control.clock = clock
    return control


@pytest.fixture
async def client(control: FakeControl, clock: FakeClock) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(control, clock))) as client:
        yield client


@pytest.fixture
async def served(control: FakeControl, clock: FakeClock) -> AsyncIterator[str]:
    """The app on a temporary unix socket, as the daemon serves it; yields the socket path."""
    # A short directory: a unix socket's path is limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="swl-") as folder:
        path = os.path.join(folder, "api.sock")
        runner = web.AppRunner(make_app(control, clock))
        await runner.setup()
        await web.UnixSite(runner, path).start()
        try:
            yield path
        finally:
            await runner.cleanup()
