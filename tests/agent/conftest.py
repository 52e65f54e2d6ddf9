"""Doubles and helpers for the agent's tests, and the real engine for the tests that need one.

Real-engine tests use the machine's engine (``SWARMLET_TEST_DOCKER_HOST``, else
``unix:///var/run/docker.sock``) and the local image ``swarmlet-test/busybox:latest``. Without
an engine they skip, except under ``CI=true``, where they fail. Every container they make
carries a label unique to the test, and is removed when the test ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from swarmlet.agent.engine import Engine
from swarmlet.agent.task_controller import TaskController
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock, FakeClock
from swarmlet.ids import new_id
from swarmlet.models import ContainerSpec, Task, TaskSpec, TaskState, TaskStatus

TaskFactory = Callable[..., Task]
Pump = Callable[..., Any]


@pytest.fixture
def make_task() -> TaskFactory:
    def make(
        image: str = "busybox",
        *,
        state: TaskState = TaskState.ASSIGNED,
        desired: TaskState = TaskState.RUNNING,
        service: str = "web",
        slot: int = 1,
        node_id: str = "node1",
        **container_spec: Any,
    ) -> Task:
        return Task(
            id=new_id(),
            name=f"{service}.{slot}",
            service_id=f"{service}-id",
            service_name=service,
            slot=slot,
            node_id=node_id,
            spec=TaskSpec(container_spec=ContainerSpec(image=image, **container_spec)),
            status=TaskStatus(state=state),
            desired_state=desired,
        )

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pump(clock: FakeClock) -> Pump:
    """Let every ready coroutine run, moving the fake clock on by ``seconds`` in small steps."""

    async def run(seconds: float = 0.2, step: float = 0.01) -> None:
        for _ in range(round(seconds / step)):
            for _ in range(30):
                await asyncio.sleep(0)
            await clock.advance(step)
        for _ in range(30):
            await asyncio.sleep(0)

    return run


class Run:
    """A controller running in the background, and every status it reported."""

    def __init__(
        self, controller: TaskController, statuses: list[TaskStatus], job: asyncio.Task[None]
    ) -> None:
        self.controller = controller
        self.statuses = statuses
        self.job = job

    @property
    def steps(self) -> list[tuple[TaskState, str]]:
        return [(s.state, s.message) for s in self.statuses]

    @property
    def last(self) -> TaskStatus:
        return self.statuses[-1]


@asynccontextmanager
async def running(
    task: Task, *, engine: Engine, clock: Clock, node_id: str = "node1", **options: Any
) -> AsyncIterator[Run]:
    """The task's controller running in the background for the block, then cancelled;
    ``options`` are the controller's (container_labels, adopted, files...)."""
    statuses: list[TaskStatus] = []
    controller = TaskController(task, engine, clock, statuses.append, node_id=node_id, **options)
    job = asyncio.create_task(controller.run())
    try:
        yield Run(controller, statuses, job)
    finally:
        await cancel_and_wait(job)
