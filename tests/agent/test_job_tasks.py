"""A job's task (desired state COMPLETE) is run to its end like any other, on the fake engine."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial

import pytest

from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.task_controller import Step, next_step
from swarmlet.clock import FakeClock
from swarmlet.models import TaskState
from tests.agent.conftest import Run, running

S = TaskState


@pytest.fixture
def engine(clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(clock)
    engine.add_image("exits0:1", exit_code=0)
    engine.add_image("exits1:1", exit_code=1)
    return engine


@pytest.fixture
def start(engine: FakeEngine, clock: FakeClock) -> Callable[..., AbstractAsyncContextManager[Run]]:
    return partial(running, engine=engine, clock=clock)


@pytest.mark.parametrize(
    ("state", "exited", "step"),
    [
        (S.ASSIGNED, False, Step.ACCEPT),
        (S.READY, False, Step.BEGIN_START),
        (S.STARTING, False, Step.START),
        (S.RUNNING, False, Step.AWAIT_EXIT),
        (S.RUNNING, True, Step.FINISH),
        (S.COMPLETE, True, Step.IDLE),
    ],
)
def test_desired_complete_runs_the_task_to_its_end(state, exited, step):
    assert next_step(state, S.COMPLETE, exited=exited, removed=False) is step


async def test_a_job_task_completes(make_task, start, pump):
    async with start(make_task("exits0:1", desired=S.COMPLETE)) as run:
        await pump()
    assert run.steps[-2:] == [(S.RUNNING, "started"), (S.COMPLETE, "finished")]


async def test_a_job_task_fails(make_task, start, pump):
    async with start(make_task("exits1:1", desired=S.COMPLETE)) as run:
        await pump()
    assert run.last.state == S.FAILED
    assert run.last.err == "task: non-zero exit (1)"
