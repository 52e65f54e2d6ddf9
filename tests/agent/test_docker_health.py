"""Tasks with a healthcheck, run by the controller on the machine's real engine."""

from __future__ import annotations

import asyncio
import os

import pytest

from swarmlet.agent.task_controller import ERR_UNHEALTHY
from swarmlet.clock import SystemClock
from swarmlet.models import SECOND_NS, TaskState
from swarmlet.models.service import HealthConfig
from tests.agent.conftest import running
from tests.agent.test_docker_tasks import TEST_IMAGE, eventually

S = TaskState
MS = 1_000_000


def check(command: str, retries: int = 1) -> HealthConfig:
    return HealthConfig(
        test=["CMD-SHELL", command], interval=500 * MS, timeout=2 * SECOND_NS, retries=retries
    )


@pytest.fixture
def start(docker, test_labels):
    def start(task):
        return running(
            task,
            engine=docker,
            clock=SystemClock(),
            node_id="node-health",
            container_labels=test_labels,
        )

    return start


async def test_starting_until_healthy_then_running(start, make_task, docker):
    # Healthy once /tmp/ok exists, which the task makes itself after a while.
    task = make_task(
        TEST_IMAGE,
        service="swlthealth",
        command=["sh", "-c", "sleep 3; touch /tmp/ok; exec sleep 60"],
        healthcheck=check("test -e /tmp/ok", retries=30),
        stop_grace_period=SECOND_NS,
    )
    async with start(task) as run:
        await eventually(lambda: bool(run.statuses) and run.last.state == S.STARTING)
        # STARTING is reported as the engine is asked to start the container (Swarm does the
        # same): the container runs a moment later.
        for _ in range(100):
            info = await docker.inspect_container(run.controller.container_name)
            if info.running:
                break
            await asyncio.sleep(0.05)
        assert info.running
        assert info.health == "starting"
        assert run.last.state == S.STARTING
        await asyncio.sleep(1.0)
        assert run.last.state == S.STARTING  # not healthy yet: still Starting
        await eventually(lambda: run.last.state == S.RUNNING, seconds=30)
        assert run.last.message == "started"
        assert (await docker.inspect_container(run.controller.container_name)).health == "healthy"


async def test_unhealthy_fails_with_swarms_error(start, make_task, docker):
    # PID 1 ignores SIGTERM: the stop kills it after the grace period, 137.
    task = make_task(
        TEST_IMAGE,
        service="swlthealth",
        command=["sleep", "60"],
        healthcheck=check("false"),
        stop_grace_period=SECOND_NS,
    )
    async with start(task) as run:
        await eventually(lambda: bool(run.statuses) and run.last.state.is_terminal, seconds=30)
    assert run.last.state == S.FAILED
    assert run.last.message == "starting"
    assert run.last.err == f"task: non-zero exit (137): {ERR_UNHEALTHY}"
    assert run.last.container_status is not None
    assert run.last.container_status.exit_code == 137
    assert S.RUNNING not in [status.state for status in run.statuses]
    info = await docker.inspect_container(run.controller.container_name)
    assert (info.state, info.exit_code) == ("exited", 137)


async def test_healthy_then_unhealthy_leaves_then_fails(start, make_task, docker):
    task = make_task(
        TEST_IMAGE,
        service="swlthealth",
        command=["sh", "-c", "touch /tmp/ok; exec sleep 60"],
        healthcheck=check("test -e /tmp/ok"),
        stop_grace_period=SECOND_NS,
    )
    async with start(task) as run:
        await eventually(lambda: bool(run.statuses) and run.last.state == S.RUNNING, seconds=30)
        proc = await asyncio.create_subprocess_exec(
            "docker",
            "exec",
            run.controller.container_name,
            "rm",
            "/tmp/ok",
            env={**os.environ, "DOCKER_HOST": docker.url},
        )
        assert await proc.wait() == 0
        await eventually(lambda: run.last.state.is_terminal, seconds=30)
    leaving = [s for s in run.statuses if s.state == S.RUNNING and s.err]
    assert [s.err for s in leaving] == [ERR_UNHEALTHY]
    assert (run.last.state, run.last.message) == (S.FAILED, "started")
    assert run.last.err == f"task: non-zero exit (137): {ERR_UNHEALTHY}"


async def test_an_unhealthy_process_that_exits_0_when_stopped_completes(start, make_task):
    task = make_task(
        TEST_IMAGE,
        service="swlthealth",
        command=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
        healthcheck=check("false"),
        stop_grace_period=5 * SECOND_NS,
    )
    async with start(task) as run:
        await eventually(lambda: bool(run.statuses) and run.last.state.is_terminal, seconds=30)
    assert (run.last.state, run.last.message, run.last.err) == (S.COMPLETE, "finished", None)
