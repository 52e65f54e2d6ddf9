"""The supervisor's restarts and stop on the fake clock, with stand-ins for etcd that are
real processes: one that dies at once, one that ignores SIGTERM."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import Unavailable
from swarmlet.manager.etcd import Supervisor, new_cluster_member, restart_delay

WITHIN_S = 10.0


def script(folder: Path, body: str) -> str:
    """A stand-in for etcd, outside the state folder."""
    (folder / "bin").mkdir()
    path = folder / "bin" / "etcd"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


async def settle(check: object) -> None:
    """Wait (real time, bounded) until ``check()`` holds: a process has started or ended."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while not check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_a_member_that_keeps_dying_is_restarted_with_growing_delays(
    tmp_path: Path,
) -> None:
    config = new_cluster_member("node1", tmp_path / "state", "127.0.0.1", "c")
    clock = FakeClock()
    supervisor = Supervisor(config, clock, binary=script(tmp_path, "exit 3"))
    task = asyncio.create_task(supervisor.run())
    try:
        for starts in range(1, 5):
            # Started, then dead and waiting for its delay.
            await settle(lambda s=starts: supervisor.starts == s and supervisor.pid is None)
            delay = restart_delay(starts)
            await clock.advance(delay * 0.9)
            await asyncio.sleep(0.05)
            assert supervisor.starts == starts
            await clock.advance(delay * 0.1)
        await settle(lambda: supervisor.starts == 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert config.log_path.read_text().count("swarmletd starts: ") == 5


async def test_a_member_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    config = new_cluster_member("node1", tmp_path / "state", "127.0.0.1", "c")
    clock = FakeClock()
    # The ignored signal stays ignored across exec: sleep is what the supervisor signals.
    ready = tmp_path / "ready"
    binary = script(tmp_path, f"trap '' TERM\ntouch {ready}\nexec sleep 60")
    supervisor = Supervisor(config, clock, binary=binary, stop_grace_s=10)
    task = asyncio.create_task(supervisor.run())
    await settle(lambda: supervisor.pid is not None)
    pid = supervisor.pid
    assert pid is not None
    await settle(ready.exists)  # SIGTERM is ignored from here on
    task.cancel()
    await clock.advance(9)
    await asyncio.sleep(0.2)
    assert not task.done()
    assert os.path.exists(f"/proc/{pid}")  # SIGTERM alone did not end it
    await clock.advance(1)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WITHIN_S)
    assert not os.path.exists(f"/proc/{pid}")


async def test_a_missing_binary_is_an_error_not_a_restart_loop(tmp_path: Path) -> None:
    config = new_cluster_member("node1", tmp_path / "state", "127.0.0.1", "c")
    supervisor = Supervisor(config, FakeClock(), binary=str(tmp_path / "no-etcd"))
    with pytest.raises(Unavailable, match="cannot start"):
        await supervisor.run()
