"""Tasks with a healthcheck on the fake engine: STARTING until healthy, failed when unhealthy."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial

import pytest

from swarmlet.agent.executor import plan_container
from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.health import HEALTH_RESYNC, Health
from swarmlet.agent.task_controller import GOSSIP_CONVERGE_DELAY, Step, next_step
from swarmlet.clock import FakeClock
from swarmlet.errors import EngineError
from swarmlet.models import SECOND_NS, ContainerSpec, TaskState
from swarmlet.models.service import HealthConfig
from tests.agent.conftest import Run, running
from tests.agent.test_task_controller import FakeNetworking, on_network

S = TaskState
UP_TO_STARTING = [
    (S.ACCEPTED, "accepted"),
    (S.PREPARING, "preparing"),
    (S.READY, "prepared"),
    (S.STARTING, "starting"),
]
HEALTHY = [*UP_TO_STARTING, (S.RUNNING, "started")]
CHECK = HealthConfig(test=["CMD-SHELL", "test -e /tmp/ok"], interval=SECOND_NS, retries=1)
UNHEALTHY = "dockerexec: unhealthy container"


@pytest.fixture
def engine(clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(clock)
    engine.add_image("busybox")
    engine.add_image("checked:1", healthcheck=True)
    engine.add_image("stubborn:1", ignores_stop_signal=True)
    return engine


@pytest.fixture
def start(engine: FakeEngine, clock: FakeClock) -> Callable[..., AbstractAsyncContextManager[Run]]:
    return partial(running, engine=engine, clock=clock)


@pytest.mark.parametrize(
    ("state", "started", "health", "exited", "step"),
    [
        (S.STARTING, False, Health.NONE, False, Step.START),
        (S.STARTING, True, Health.NONE, False, Step.BEGIN_RUNNING),
        (S.STARTING, True, Health.STARTING, False, Step.AWAIT_HEALTH),
        (S.STARTING, True, Health.HEALTHY, False, Step.BEGIN_RUNNING),
        (S.STARTING, True, Health.UNHEALTHY, False, Step.STOP_UNHEALTHY),
        (S.STARTING, True, Health.UNHEALTHY, True, Step.FINISH),
        (S.STARTING, True, Health.STARTING, True, Step.FINISH),
        (S.RUNNING, True, Health.HEALTHY, False, Step.AWAIT_EXIT),
        (S.RUNNING, True, Health.UNHEALTHY, False, Step.STOP_UNHEALTHY),
        (S.RUNNING, True, Health.UNHEALTHY, True, Step.FINISH),
    ],
)
def test_next_step_with_health(state, started, health, exited, step):
    assert (
        next_step(state, S.RUNNING, exited=exited, removed=False, started=started, health=health)
        is step
    )


def test_shutdown_comes_before_health():
    step = next_step(
        S.STARTING, S.SHUTDOWN, exited=False, removed=False, started=True, health=Health.STARTING
    )
    assert step is Step.SHUTDOWN


async def test_starting_until_healthy_then_running(make_task, start, engine, pump):
    async with start(make_task(healthcheck=CHECK)) as run:
        await pump(5.0)
        container = engine.container(run.controller.container_name)
        assert container.state == "running"
        assert container.config["Healthcheck"] == {
            "Test": ["CMD-SHELL", "test -e /tmp/ok"],
            "Interval": SECOND_NS,
            "Retries": 1,
        }
        assert run.steps == UP_TO_STARTING
        engine.set_health(container.id, "healthy")
        await pump()
        assert run.steps == HEALTHY
        assert run.last.container_status is not None
        assert run.last.container_status.pid == container.pid > 0
        assert run.last.err is None


async def test_the_images_healthcheck_counts(make_task, start, engine, pump):
    async with start(make_task("checked:1")) as run:
        await pump(2.0)
        assert run.steps == UP_TO_STARTING
        engine.set_health(run.controller.container_name, "healthy")
        await pump()
        assert run.steps == HEALTHY


async def test_no_healthcheck_turns_the_images_off(make_task, start, engine, pump):
    async with start(make_task("checked:1", healthcheck=HealthConfig(test=["NONE"]))) as run:
        await pump()
        assert run.steps == HEALTHY
        container = engine.container(run.controller.container_name)
        assert container.config["Healthcheck"]["Test"] == ["NONE"]
        assert container.health == ""


async def test_unhealthy_while_starting_fails_with_swarms_error(make_task, start, engine, pump):
    task = make_task("stubborn:1", healthcheck=CHECK, stop_grace_period=3 * SECOND_NS)
    async with start(task) as run:
        await pump()
        container = engine.container(run.controller.container_name)
        engine.set_health(container.id, "unhealthy")
        await pump(2.5)
        # Stopped with its grace period: the process ignores SIGTERM, so it still runs.
        assert container.stopped_with == ("SIGTERM", 3)
        assert container.state == "running"
        assert run.steps == UP_TO_STARTING
        await pump(1.0)
    assert container.state == "exited"
    assert run.steps == [*UP_TO_STARTING, (S.FAILED, "starting")]
    assert run.last.err == f"task: non-zero exit (137): {UNHEALTHY}"
    assert run.last.container_status is not None
    assert run.last.container_status.exit_code == 137
    assert container.id in engine.containers  # kept, as the task's history


async def test_unhealthy_while_running_leaves_the_load_balancer_first(
    make_task, start, engine, pump
):
    async with start(make_task(healthcheck=CHECK)) as run:
        await pump()
        container = engine.container(run.controller.container_name)
        engine.set_health(container.id, "healthy")
        await pump()
        pid = container.pid
        assert engine.health_streams(container.id) == 1
        engine.set_health(container.id, "unhealthy")
        await pump()
        assert engine.health_streams(container.id) == 0  # nothing more to follow
    assert run.steps == [*HEALTHY, (S.RUNNING, "started"), (S.FAILED, "started")]
    leaving, failed = run.statuses[-2:]
    # Reported before the stop, with the container still alive: the manager drops it from
    # the VIP, DNS and mesh as soon as a RUNNING task carries an Err.
    assert leaving.err == UNHEALTHY
    assert leaving.container_status is not None
    assert leaving.container_status.pid == pid > 0
    assert failed.err == f"task: non-zero exit (143): {UNHEALTHY}"
    assert failed.container_status is not None
    assert failed.container_status.exit_code == 143


async def test_on_a_network_the_stop_waits_for_the_hosts_to_converge(
    make_task, start, engine, pump
):
    task = on_network(make_task(healthcheck=CHECK))
    async with start(task, networking=FakeNetworking()) as run:
        await pump()
        container = engine.container(run.controller.container_name)
        engine.set_health(container.id, "healthy")
        await pump()
        engine.set_health(container.id, "unhealthy")
        await pump(GOSSIP_CONVERGE_DELAY - 0.5)
        assert run.last.err == UNHEALTHY
        assert run.last.state == S.RUNNING
        assert container.state == "running"
        await pump(1.0)
        assert container.state == "exited"
        assert run.last.state == S.FAILED


async def test_an_unhealthy_container_that_exits_0_when_stopped_completes(
    make_task, start, engine, pump
):
    async with start(make_task("stubborn:1", healthcheck=CHECK)) as run:
        await pump()
        container = engine.container(run.controller.container_name)
        engine.set_health(container.id, "healthy")
        await pump()
        engine.set_health(container.id, "unhealthy")
        await pump(1.0)
        assert container.stopped_with is not None
        engine.exit(container.id, 0)  # it handles the stop signal and exits cleanly
        await pump()
    assert run.steps[-1] == (S.COMPLETE, "finished")
    assert run.last.err is None
    assert run.last.container_status is not None
    assert run.last.container_status.exit_code == 0


async def test_an_exit_while_starting_fails_without_the_health_cause(
    make_task, start, engine, pump
):
    async with start(make_task(healthcheck=CHECK)) as run:
        await pump()
        engine.exit(run.controller.container_name, 3)
        await pump()
    assert run.steps == [*UP_TO_STARTING, (S.FAILED, "starting")]
    assert run.last.err == "task: non-zero exit (3)"


async def test_a_missed_healthy_event_is_caught_up_by_the_resync(make_task, start, engine, pump):
    async with start(make_task(healthcheck=CHECK)) as run:
        await pump()
        engine.set_health(run.controller.container_name, "healthy", event=False)
        await pump(HEALTH_RESYNC - 1)
        assert run.steps == UP_TO_STARTING
        await pump(2.0)
        assert run.steps == HEALTHY


async def test_a_reconnect_reads_the_health_again(make_task, start, engine, pump):
    async with start(make_task(healthcheck=CHECK)) as run:
        await pump()
        engine.set_health(run.controller.container_name, "healthy", event=False)
        engine.end_event_streams()  # the engine restarted its event stream
        await pump(1.0)
        assert run.steps == HEALTHY


async def test_an_unreachable_engine_is_retried_while_waiting_for_health(
    make_task, start, engine, pump
):
    async with start(make_task(healthcheck=CHECK)) as run:
        await pump()
        engine.failures["watch_health"] = EngineError("cannot reach the engine", 0)
        engine.set_health(run.controller.container_name, "healthy", event=False)
        engine.end_event_streams()
        await pump(2.0)
        assert run.steps == HEALTHY


async def test_shutdown_while_waiting_for_health(make_task, start, engine, pump):
    task = make_task(healthcheck=CHECK)
    async with start(task) as run:
        await pump()
        run.controller.update(task.replace(desired_state=S.SHUTDOWN))
        await pump()
    assert run.steps == [*UP_TO_STARTING, (S.SHUTDOWN, "shutdown")]
    assert engine.health_streams(run.controller.container_name) == 0


async def test_an_adopted_container_not_yet_healthy_stays_starting(make_task, start, engine, pump):
    task = make_task("checked:1", state=S.STARTING)
    container = engine.run_container(
        f"web.1.{task.id}", "checked:1", {"com.docker.swarm.task.id": task.id}
    )
    container.health = "starting"
    async with start(task, adopted=container.info()) as run:
        await pump()
        assert run.steps == []
        engine.set_health(container.id, "healthy")
        await pump()
        assert run.steps == [(S.RUNNING, "started")]


def test_the_clis_healthcheck_reaches_the_container_config(make_task):
    # As `docker service create --health-cmd false --health-interval 1s --health-retries 1`
    # sends it (Go's zero durations included), and `--no-healthcheck`.
    sent = {"Test": ["CMD-SHELL", "false"], "Interval": SECOND_NS, "Timeout": 0, "Retries": 1}
    spec = ContainerSpec.from_api({"Image": "busybox", "Healthcheck": sent})
    assert spec.to_api()["Healthcheck"] == {
        "Test": ["CMD-SHELL", "false"],
        "Interval": SECOND_NS,
        "Retries": 1,
    }
    task = make_task(healthcheck=spec.healthcheck)
    plan = plan_container(task, "node1", {})
    assert plan.config["Healthcheck"] == spec.to_api()["Healthcheck"]
    off = make_task(healthcheck=HealthConfig.from_api({"Test": ["NONE"]}))
    assert plan_container(off, "node1", {}).config["Healthcheck"] == {"Test": ["NONE"]}
    assert "Healthcheck" not in plan_container(make_task(), "node1", {}).config
