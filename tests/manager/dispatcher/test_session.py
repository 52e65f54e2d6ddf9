"""An agent's session to the dispatcher over a real websocket on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from aiohttp import web

from swarmlet.agent.session import Session, join
from swarmlet.clock import SystemClock
from swarmlet.errors import InvalidSpec
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.server import session_app
from swarmlet.manager.store import MemoryBackend, Op, Store
from swarmlet.models import (
    Cluster,
    JoinTokens,
    Node,
    NodeDescription,
    NodeState,
    Task,
    TaskState,
    TaskStatus,
)
from swarmlet.protocol import StatusUpdate

TOKEN = "SWMTKN-1-" + "a" * 50 + "-" + "w" * 25


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Manager:
    """A dispatcher served on a loopback port, that can be stopped and started again."""

    def __init__(self) -> None:
        self.store = Store(MemoryBackend(), SystemClock())
        tokens = JoinTokens(worker=TOKEN, manager=TOKEN.replace("w", "m"))
        self.store.commit([Op.create(Cluster(id="c1", join_tokens=tokens))])
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        dispatcher = Dispatcher(self.store, SystemClock())
        self._loop = asyncio.create_task(dispatcher.run())
        self._runner = web.AppRunner(session_app(dispatcher))
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        assert self._runner is not None
        assert self._loop is not None
        await self._runner.cleanup()
        self._loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._loop


class FakeWorker:
    def __init__(self) -> None:
        self.assigned: list[list[str]] = []
        self.last: dict[str, StatusUpdate] = {}

    async def assign(self, tasks: Sequence[Task]) -> None:
        self.assigned.append([task.id for task in tasks])

    def statuses(self) -> list[StatusUpdate]:
        return list(self.last.values())


@pytest.fixture
async def manager() -> AsyncIterator[Manager]:
    manager = Manager()
    await manager.start()
    yield manager
    await manager.stop()


async def eventually(check: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_join_refuses_a_bad_token(manager: Manager) -> None:
    with pytest.raises(InvalidSpec, match="valid join token"):
        await join([manager.addr], TOKEN[:-1] + "x", NodeDescription(), "127.0.0.1")
    assert manager.store.all(Node) == []


async def test_a_session_carries_assignments_and_status_and_survives_a_restart(
    manager: Manager,
) -> None:
    node_id = await join([manager.addr], TOKEN, NodeDescription(hostname="n2"), "127.0.0.1")
    worker = FakeWorker()

    async def describe() -> NodeDescription:
        return NodeDescription(hostname="n2")

    session = Session(
        node_id=node_id,
        manager_addrs=[manager.addr],
        addr="127.0.0.1",
        describe=describe,
        assign=worker.assign,
        statuses=worker.statuses,
        clock=SystemClock(),
    )
    running = asyncio.create_task(session.run())
    await asyncio.wait_for(session.connected.wait(), 5)
    assert manager.store.get(Node, node_id).status.state == NodeState.READY

    assigned = TaskStatus(state=TaskState.ASSIGNED)
    manager.store.commit(
        [Op.create(Task(id="t1", service_id="s", node_id=node_id, status=assigned))]
    )
    await eventually(lambda: worker.assigned and worker.assigned[-1] == ["t1"])

    update = StatusUpdate(task_id="t1", status=TaskStatus(state=TaskState.RUNNING))
    worker.last["t1"] = update
    await session.report([update])
    await eventually(lambda: manager.store.get(Task, "t1").status.state == TaskState.RUNNING)

    # The manager goes away; what the agent learns meanwhile is resent when it is back.
    await manager.stop()
    await eventually(lambda: not session.connected.is_set())
    worker.last["t1"] = StatusUpdate(
        task_id="t1", status=TaskStatus(state=TaskState.FAILED, err="task: non-zero exit (1)")
    )
    await manager.start()
    await eventually(lambda: manager.store.get(Task, "t1").status.state == TaskState.FAILED)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
