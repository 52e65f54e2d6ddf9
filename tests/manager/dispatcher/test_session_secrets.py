"""Secrets over a real session (TLS on loopback): the data reaches the agent of the node whose
task uses it, before the task does, and no other node's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from swarmlet.agent import certificates
from swarmlet.agent.dependencies import Dependencies
from swarmlet.agent.session import Session
from swarmlet.clock import SystemClock
from swarmlet.manager.store import Op
from swarmlet.models import (
    ContainerSpec,
    FileTarget,
    NodeDescription,
    Secret,
    SecretReference,
    SecretSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.pki import Credentials
from swarmlet.protocol import StatusUpdate
from tests.manager.dispatcher.test_session import Manager, eventually

DB = Secret(id="sdb", spec=SecretSpec(name="db", data=b"hunter2"))


class Agent:
    """What an agent does with assignments: keeps the secrets, then takes the tasks, noting
    which secrets it had when each set came."""

    def __init__(self) -> None:
        self.dependencies = Dependencies()
        self.assigned: list[tuple[list[str], bytes | None]] = []

    async def assign(self, tasks: Sequence[Task]) -> None:
        secret = self.dependencies.secret(DB.id)
        self.assigned.append(([t.id for t in tasks], secret.spec.data if secret else None))

    def statuses(self) -> list[StatusUpdate]:
        return []


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Manager]:
    manager = Manager(tmp_path)
    await manager.start()
    yield manager
    await manager.stop()


async def connect(manager: Manager, folder: Path, agent: Agent) -> tuple[str, asyncio.Task[None]]:
    credentials = Credentials(folder)
    node_id = await certificates.join(
        [manager.addr], manager.cluster.join_tokens.worker, credentials
    )

    async def describe() -> NodeDescription:
        return NodeDescription(hostname=folder.name)

    session = Session(
        credentials=credentials,
        manager_addrs=[manager.addr],
        addr="127.0.0.1",
        describe=describe,
        assign=agent.assign,
        statuses=agent.statuses,
        clock=SystemClock(),
        dependencies=agent.dependencies.replace,
    )
    running = asyncio.create_task(session.run())
    await asyncio.wait_for(session.connected.wait(), 5)
    return node_id, running


async def test_a_secret_reaches_only_the_agent_whose_task_uses_it(
    manager: Manager, tmp_path: Path
) -> None:
    manager.store.commit([Op.create(DB)])
    using, other = Agent(), Agent()
    using_id, first = await connect(manager, tmp_path / "n2", using)
    other_id, second = await connect(manager, tmp_path / "n3", other)
    ref = SecretReference(secret_id=DB.id, secret_name="db", file=FileTarget(name="db"))
    spec = TaskSpec(container_spec=ContainerSpec(image="busybox", secrets=[ref]))
    assigned = TaskStatus(state=TaskState.ASSIGNED)
    manager.store.commit(
        [
            Op.create(Task(id="t1", service_id="s", node_id=using_id, spec=spec, status=assigned)),
            Op.create(Task(id="t2", service_id="s", node_id=other_id, status=assigned)),
        ]
    )
    await eventually(lambda: using.assigned and using.assigned[-1][0] == ["t1"])
    await eventually(lambda: other.assigned and other.assigned[-1][0] == ["t2"])
    # The secret was there when the task came.
    assert using.assigned[-1] == (["t1"], b"hunter2")
    assert other.dependencies.secret(DB.id) is None
    assert all(data is None for _, data in other.assigned)
    for running in (first, second):
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
