"""Real etcd members on 127.0.0.1 for the tests: each on ports of its own, in a temporary
state folder, stopped (and, if that fails, killed by its PID) whatever the test did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import SystemClock
from swarmlet.manager.etcd import MemberConfig, Supervisor, client_tls, wait_healthy
from swarmlet.manager.etcd.client import EtcdClient
from swarmlet.pki.ca import Issuer, new_root
from tests.etcd_fixtures import (
    ADDRESS,
    CLUSTER,
    HEALTHY_WITHIN_S,
    etcd_binary_or_skip,
    free_ports,
    kill_if_running,
    prepare_member,
)

__all__ = ["ADDRESS", "CLUSTER", "Members", "Running", "free_ports"]


@pytest.fixture
def etcd_binary() -> str:
    return etcd_binary_or_skip()


@pytest.fixture(scope="module")
def root() -> Issuer:
    return new_root(datetime.now(UTC))


@dataclass
class Running:
    config: MemberConfig
    supervisor: Supervisor
    task: asyncio.Task[None]
    client: EtcdClient


@dataclass
class Members:
    """Starts members with a supervisor each; ``close`` stops them all."""

    binary: str
    root: Issuer
    running: list[Running] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)

    def prepare(self, config: MemberConfig) -> None:
        prepare_member(self.root, config)

    async def start(self, config: MemberConfig) -> Running:
        """Start the member of ``config`` and return once it answers healthy."""
        self.prepare(config)
        supervisor = Supervisor(config, SystemClock(), binary=self.binary, stop_grace_s=5)
        task = asyncio.create_task(supervisor.run(), name=f"etcd {config.name}")
        client = EtcdClient(config.client_url, client_tls(config))
        running = Running(config, supervisor, task, client)
        self.running.append(running)
        await self.wait_healthy(running)
        return running

    async def wait_healthy(self, running: Running) -> None:
        # The PID of every process started, so that close can make sure it is gone.
        deadline = asyncio.get_running_loop().time() + HEALTHY_WITHIN_S
        while running.supervisor.pid is None and not running.task.done():
            assert asyncio.get_running_loop().time() < deadline, "etcd did not start"
            await asyncio.sleep(0.05)
        if running.task.done():
            running.task.result()  # its error, if any
        assert running.supervisor.pid is not None
        self.pids.add(running.supervisor.pid)
        await wait_healthy(running.client, SystemClock(), HEALTHY_WITHIN_S)

    async def close(self) -> None:
        for running in reversed(self.running):
            await cancel_and_wait(running.task)
            await running.client.close()
        for pid in self.pids:
            kill_if_running(pid)


@pytest.fixture
async def members(etcd_binary: str, root: Issuer) -> AsyncIterator[Members]:
    started = Members(etcd_binary, root)
    try:
        yield started
    finally:
        await started.close()
