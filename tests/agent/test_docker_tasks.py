"""Tasks run by the controller and the worker on the machine's real engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from swarmlet.agent.task_controller import TaskController
from swarmlet.agent.worker import Worker
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import SystemClock
from swarmlet.ids import new_id
from swarmlet.models import SECOND_NS, Task, TaskState, TaskStatus
from swarmlet.protocol import StatusUpdate
from tests.agent.conftest import running

S = TaskState
TEST_IMAGE = "swarmlet-test/busybox:latest"


async def eventually(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait until ``predicate`` holds: the real engine moves in real time."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - the state is the engine's, not an Event
            await asyncio.sleep(0.05)


@pytest.fixture
def node_id() -> str:
    return new_id()


@pytest.fixture
def start(docker, test_labels, node_id):
    @asynccontextmanager
    async def start(task: Task) -> AsyncIterator[tuple[TaskController, list[TaskStatus]]]:
        async with running(
            task, engine=docker, clock=SystemClock(), node_id=node_id, container_labels=test_labels
        ) as run:
            try:
                yield run.controller, run.statuses
            finally:
                if run.job.done():
                    run.job.result()

    return start


async def test_non_zero_exit_fails(start, make_task):
    task = make_task(TEST_IMAGE, service="swltest", command=["sh", "-c", "exit 1"])
    async with start(task) as (_controller, statuses):
        await eventually(lambda: bool(statuses) and statuses[-1].state.is_terminal)
    assert [s.state for s in statuses] == [
        S.ACCEPTED,
        S.PREPARING,
        S.READY,
        S.STARTING,
        S.RUNNING,
        S.FAILED,
    ]
    assert statuses[-1].err == "task: non-zero exit (1)"
    assert statuses[-1].container_status is not None
    assert statuses[-1].container_status.exit_code == 1


async def test_a_long_task_runs_until_shut_down(start, make_task, docker):
    task = make_task(
        TEST_IMAGE,
        service="swltest",
        command=["sleep", "3600"],
        stop_signal="SIGTERM",
        stop_grace_period=SECOND_NS,
    )
    loop = asyncio.get_running_loop()
    async with start(task) as (controller, statuses):
        await eventually(lambda: bool(statuses) and statuses[-1].state == S.RUNNING)
        running = statuses[-1].container_status
        assert running is not None
        assert running.container_id
        assert running.pid
        info = await docker.inspect_container(running.container_id)
        assert info.running
        assert info.labels["com.docker.swarm.task.id"] == task.id
        began = loop.time()
        controller.update(task.replace(desired_state=S.SHUTDOWN))
        await eventually(lambda: statuses[-1].state == S.SHUTDOWN)
    assert loop.time() - began < 8
    assert statuses[-1].message == "shutdown"
    stopped = await docker.inspect_container(running.container_id)
    assert stopped.exited  # stopped, and kept


async def test_missing_image_is_rejected(start, make_task):
    async with start(make_task("swarmlet-test/nope:1", service="swltest")) as (_, statuses):
        await eventually(lambda: bool(statuses) and statuses[-1].state.is_terminal)
    assert statuses[-1].state == S.REJECTED
    assert statuses[-1].err == "No such image: swarmlet-test/nope:1"


async def test_worker_runs_and_removes_tasks(docker, test_labels, node_id, make_task):
    reported: list[StatusUpdate] = []

    async def report(updates: list[StatusUpdate]) -> None:
        reported.extend(updates)

    worker = Worker(docker, node_id, report, SystemClock(), container_labels=test_labels)
    task = make_task(
        TEST_IMAGE,
        service="swltest",
        node_id=node_id,
        command=["sleep", "3600"],
        stop_grace_period=0,
    )
    job = asyncio.create_task(worker.run())
    try:
        await worker.assign([task])
        await eventually(lambda: any(u.status.state == S.RUNNING for u in reported))
        assert len(await docker.list_containers(test_labels)) == 1
        await worker.assign([])
        await eventually(lambda: not worker.statuses())
        for _ in range(100):
            if not await docker.list_containers(test_labels):
                break
            await asyncio.sleep(0.1)
        assert await docker.list_containers(test_labels) == []
    finally:
        if job.done():
            job.result()
        await cancel_and_wait(job)
