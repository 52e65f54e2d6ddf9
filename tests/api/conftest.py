from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from swarmlet.api import make_app
from swarmlet.clock import FakeClock
from tests.api.fakes import WorkerControl


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def control() -> WorkerControl:
    return WorkerControl()


@pytest.fixture
async def client(control: WorkerControl, clock: FakeClock) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(control, clock))) as client:
        yield client


@pytest.fixture
async def served(control: WorkerControl, clock: FakeClock) -> AsyncIterator[str]:
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
