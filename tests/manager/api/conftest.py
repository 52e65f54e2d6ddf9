from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from swarmlet.api import make_app
from swarmlet.clock import FakeClock
from swarmlet.manager.store import Store
from tests.api.fakes import require_engine
from tests.manager.api.fakes import FakeControl, manager_control

DOCKER = "/usr/local/bin/docker"

# (socket, *args, stdin=...) -> (exit code, stdout, stderr), or stdout for `cli`
Docker = Callable[..., Awaitable[tuple[int, str, str]]]
Cli = Callable[..., Awaitable[str]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Store:
    return Store(clock=clock)


@pytest.fixture
async def control(store: Store, clock: FakeClock) -> FakeControl:
    control = await manager_control(store)
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


@pytest.fixture
def docker() -> Iterator[Docker]:
    """Runs the stock docker CLI against a socket (see `served`); returns (exit code, stdout,
    stderr). It needs the engine for what the app passes through (/_ping's builder version,
    /info, run and exec); under CI a missing engine or CLI fails instead of skipping."""
    require_engine()
    if not os.access(DOCKER, os.X_OK):
        message = f"no docker CLI at {DOCKER}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    config = tempfile.mkdtemp(prefix="swl-cli-")

    async def run(socket: str, *args: str, stdin: bytes | None = b"") -> tuple[int, str, str]:
        """``stdin``: what to write to the CLI's stdin (by default nothing, then EOF), or None
        for /dev/null."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": config,
            "DOCKER_CONFIG": config,
            "DOCKER_HOST": f"unix://{socket}",
        }
        process = await asyncio.create_subprocess_exec(
            DOCKER,
            *args,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    yield run
    shutil.rmtree(config, ignore_errors=True)


@pytest.fixture
def cli(docker: Docker) -> Cli:
    """The stock CLI as `docker` runs it, for commands that must succeed: returns stdout;
    stdin is /dev/null unless given."""

    async def run(socket: str, *args: str, stdin: bytes | None = None) -> str:
        code, out, err = await docker(socket, *args, stdin=stdin)
        assert code == 0, f"docker {' '.join(args)}: {err}"
        return out

    return run
