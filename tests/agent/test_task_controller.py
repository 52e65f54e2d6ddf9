"""The task controller against the fake engine: states and messages, in order."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial

import pytest

from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.networking import ContainerNetworking
from swarmlet.agent.task_controller import Step, next_step
from swarmlet.clock import FakeClock
from swarmlet.errors import EngineError
from swarmlet.models import SECOND_NS, Task, TaskState, TaskStatus
from tests.agent.conftest import Run, running

S = TaskState
HAPPY = [
    (S.ACCEPTED, "accepted"),
    (S.PREPARING, "preparing"),
    (S.READY, "prepared"),
    (S.STARTING, "starting"),
    (S.RUNNING, "started"),
]


@pytest.fixture
def engine(clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(clock)
    engine.add_image("busybox")
    engine.add_image("exits0:1", exit_code=0)
    engine.add_image("exits1:1", exit_code=1)
    engine.add_image("stubborn:1", ignores_stop_signal=True)
    return engine


@pytest.fixture
def start(engine: FakeEngine, clock: FakeClock) -> Callable[..., AbstractAsyncContextManager[Run]]:
    """`running` on the fake engine: ``async with start(task, **options) as run``."""
    return partial(running, engine=engine, clock=clock)


@pytest.mark.parametrize(
    ("state", "desired", "exited", "removed", "step"),
    [
        (S.ASSIGNED, S.RUNNING, False, False, Step.ACCEPT),
        (S.ACCEPTED, S.RUNNING, False, False, Step.BEGIN_PREPARE),
        (S.PREPARING, S.RUNNING, False, False, Step.PREPARE),
        (S.READY, S.RUNNING, False, False, Step.BEGIN_START),
        (S.READY, S.READY, False, False, Step.IDLE),
        (S.PREPARING, S.READY, False, False, Step.PREPARE),
        (S.STARTING, S.RUNNING, False, False, Step.START),
        (S.STARTING, S.READY, False, False, Step.IDLE),
        (S.RUNNING, S.RUNNING, False, False, Step.AWAIT_EXIT),
        (S.RUNNING, S.READY, False, False, Step.AWAIT_EXIT),
        (S.RUNNING, S.RUNNING, True, False, Step.FINISH),
        (S.RUNNING, S.SHUTDOWN, True, False, Step.SHUTDOWN),
        (S.ASSIGNED, S.SHUTDOWN, False, False, Step.SHUTDOWN),
        (S.RUNNING, S.REMOVE, False, False, Step.SHUTDOWN),
        (S.SHUTDOWN, S.REMOVE, False, False, Step.REMOVE),
        (S.FAILED, S.REMOVE, True, False, Step.REMOVE),
        (S.SHUTDOWN, S.REMOVE, False, True, Step.IDLE),
        (S.FAILED, S.SHUTDOWN, True, False, Step.IDLE),
        (S.COMPLETE, S.RUNNING, True, False, Step.IDLE),
        (S.REJECTED, S.RUNNING, False, False, Step.IDLE),
    ],
)
def test_next_step(state, desired, exited, removed, step):
    assert next_step(state, desired, exited=exited, removed=removed) is step


async def test_exit_0_completes(make_task, start, engine, pump):
    async with start(make_task("exits0:1")) as run:
        await pump()
    assert run.steps == [*HAPPY, (S.COMPLETE, "finished")]
    running, done = run.statuses[-2:]
    container = engine.container(run.controller.container_name)
    assert running.container_status is not None
    assert running.container_status.container_id == container.id
    assert done.container_status is not None
    assert done.container_status.exit_code == 0
    assert done.err is None
    assert engine.pulled == []  # present locally: no pull


async def test_exit_1_fails(make_task, start, pump):
    async with start(make_task("exits1:1")) as run:
        await pump()
    assert run.steps == [*HAPPY, (S.FAILED, "started")]
    assert run.last.err == "task: non-zero exit (1)"
    assert run.last.container_status is not None
    assert run.last.container_status.exit_code == 1


async def test_waits_for_the_process_to_exit(make_task, start, engine, pump):
    async with start(make_task()) as run:
        await pump()
        assert run.steps == HAPPY
        container = engine.container(run.controller.container_name)
        assert run.last.container_status is not None
        assert run.last.container_status.pid == container.pid > 0
        engine.exit(container.id, 3)
        await pump()
    assert run.last.state == S.FAILED
    assert run.last.err == "task: non-zero exit (3)"


async def test_pulls_an_image_that_is_not_present(make_task, start, engine, pump):
    engine.add_registry_image("remote:2", exit_code=0)
    async with start(make_task("remote:2")) as run:
        await pump()
    assert engine.pulled == ["remote:2"]
    assert run.last.state == S.COMPLETE


async def test_missing_image_is_rejected(make_task, start, engine, pump):
    async with start(make_task("nope:1")) as run:
        await pump()
    assert run.steps == [*HAPPY[:2], (S.REJECTED, "preparing")]
    assert run.last.err == "No such image: nope:1"
    assert engine.containers == {}


async def test_create_failure_is_rejected(make_task, start, engine, pump):
    engine.failures["create_container"] = EngineError("invalid mount config", 400)
    async with start(make_task()) as run:
        await pump()
    assert run.last.state == S.REJECTED
    assert run.last.err == "invalid mount config"


async def test_start_failure_fails(make_task, start, engine, pump):
    engine.failures["start_container"] = EngineError("OCI runtime create failed", 500)
    async with start(make_task()) as run:
        await pump()
    assert run.steps == [*HAPPY[:4], (S.FAILED, "starting")]
    assert run.last.err == "OCI runtime create failed"


async def test_unreachable_engine_is_retried_not_fatal(make_task, start, engine, pump):
    engine.failures["create_container"] = EngineError("connection refused", 0)
    async with start(make_task()) as run:
        await pump(0.1)
        assert run.last.state == S.PREPARING
        await pump(1.0)
    assert run.steps == HAPPY


async def test_desired_ready_prepares_without_starting(make_task, start, engine, pump):
    task = make_task(desired=S.READY)
    async with start(task) as run:
        await pump()
        assert run.steps == HAPPY[:3]
        assert engine.container(run.controller.container_name).state == "created"
        run.controller.update(task.replace(desired_state=S.RUNNING))
        await pump()
    assert run.steps == HAPPY
    assert engine.container(run.controller.container_name).state == "running"


async def test_shutdown_stops_with_the_signal_and_grace_period(make_task, start, engine, pump):
    task = make_task("stubborn:1", stop_signal="SIGINT", stop_grace_period=3 * SECOND_NS)
    async with start(task) as run:
        await pump()
        run.controller.update(task.replace(desired_state=S.SHUTDOWN))
        await pump(2.5)
        container = engine.container(run.controller.container_name)
        assert container.stopped_with == ("SIGINT", 3)
        assert container.state == "running"  # it ignores SIGINT: the grace period runs
        await pump(1.0)
    assert run.steps == [*HAPPY, (S.SHUTDOWN, "shutdown")]
    assert run.last.container_status is not None
    assert run.last.container_status.exit_code == 137
    assert container.state == "exited"
    assert container.id in engine.containers  # kept


async def test_shutdown_default_grace_is_10s(make_task, start, engine, pump):
    task = make_task()
    async with start(task) as run:
        await pump()
        run.controller.update(task.replace(desired_state=S.SHUTDOWN))
        await pump()
    container = engine.container(run.controller.container_name)
    assert container.stopped_with == ("SIGTERM", 10)
    assert run.last.state == S.SHUTDOWN
    assert run.last.container_status is not None
    assert run.last.container_status.exit_code == 143


async def test_shutdown_before_start_creates_nothing(make_task, start, engine, pump):
    async with start(make_task(desired=S.SHUTDOWN)) as run:
        await pump()
    assert run.steps == [(S.SHUTDOWN, "shutdown")]
    assert engine.containers == {}


async def test_remove_stops_and_removes(make_task, start, engine, pump):
    task = make_task()
    async with start(task) as run:
        await pump()
        run.controller.update(task.replace(desired_state=S.REMOVE))
        await pump()
    assert run.steps == [*HAPPY, (S.SHUTDOWN, "shutdown")]
    assert engine.containers == {}


async def test_remove_after_completion_removes_the_container(make_task, start, engine, pump):
    task = make_task("exits0:1")
    async with start(task) as run:
        await pump()
        assert len(engine.containers) == 1
        run.controller.update(task.replace(desired_state=S.REMOVE))
        await pump()
    assert run.last.state == S.COMPLETE  # nothing more to report
    assert engine.containers == {}


async def test_never_moves_backwards(make_task, start, pump):
    task = make_task()
    async with start(task) as run:
        await pump()
        # The manager's copy lags behind what the agent reported.
        run.controller.update(task.replace(status=TaskStatus(state=S.ASSIGNED)))
        await pump()
    assert run.steps == HAPPY


async def test_container_carries_the_task(make_task, start, engine, pump):
    task = make_task(
        labels={"app": "web"},
        command=["sh", "-c"],
        args=["sleep 5"],
        env=["A=1"],
        init=True,
    )
    async with start(task, container_labels={"com.swarmlet.lab": "swl"}) as run:
        await pump()
    container = engine.container(f"web.1.{task.id}")
    assert run.statuses[-1].container_status is not None
    assert run.statuses[-1].container_status.container_id == container.id
    assert container.labels["app"] == "web"
    assert container.labels["com.swarmlet.lab"] == "swl"
    assert container.labels["com.docker.swarm.task.id"] == task.id
    assert container.labels["com.docker.swarm.node.id"] == "node1"
    assert container.config["Entrypoint"] == ["sh", "-c"]
    assert container.config["Cmd"] == ["sleep 5"]
    assert container.host_config["Init"] is True


async def test_reuses_a_container_an_earlier_attempt_created(make_task, start, engine, pump):
    task = make_task()
    earlier = await engine.create_container(
        f"web.1.{task.id}",
        {"Image": "busybox", "Labels": {"com.docker.swarm.task.id": task.id}},
        {},
    )
    async with start(task) as run:
        await pump()
    assert run.steps == HAPPY
    assert list(engine.containers) == [earlier]


async def test_adopts_a_running_container(make_task, start, engine, pump):
    task = make_task(state=S.RUNNING)
    container = engine.run_container(f"web.1.{task.id}", "busybox", {})
    async with start(task, adopted=container.info()) as run:
        await pump()
        assert run.steps == [(S.RUNNING, "started")]
        assert run.last.container_status is not None
        assert run.last.container_status.pid == container.pid
        engine.exit(container.id, 0)
        await pump()
    assert run.steps == [(S.RUNNING, "started"), (S.COMPLETE, "finished")]
    assert len(engine.containers) == 1


async def test_a_container_adopted_for_a_task_shut_down_meanwhile_is_removed(
    make_task, start, engine, pump
):
    # The node was Down, its task replaced elsewhere: the container left running is stale.
    task = make_task(state=S.RUNNING, desired=S.SHUTDOWN)
    container = engine.run_container(f"web.1.{task.id}", "busybox", {})
    async with start(task, adopted=container.info()) as run:
        await pump()
    assert run.last.state == S.SHUTDOWN
    assert engine.containers == {}


async def test_a_container_shut_down_while_the_agent_runs_is_kept(make_task, start, engine, pump):
    task = make_task(state=S.RUNNING)
    container = engine.run_container(f"web.1.{task.id}", "busybox", {})
    async with start(task, adopted=container.info()) as run:
        await pump()
        run.controller.update(task.replace(desired_state=S.SHUTDOWN))
        await pump()
    assert run.last.state == S.SHUTDOWN
    assert list(engine.containers) == [container.id]


async def test_adopts_an_exited_container(make_task, start, engine, pump):
    task = make_task(state=S.STARTING)
    container = engine.run_container(f"web.1.{task.id}", "busybox", {})
    engine.exit(container.id, 2)
    async with start(task, adopted=container.info()) as run:
        await pump()
    assert run.steps == [(S.FAILED, "started")]
    assert run.last.err == "task: non-zero exit (2)"


async def test_shutdown_of_a_vanished_container(make_task, start, engine, pump):
    task = make_task()
    async with start(task) as run:
        await pump()
        del engine.containers[engine.container(run.controller.container_name).id]
        run.controller.update(task.replace(desired_state=S.SHUTDOWN))
        await pump()
    # A stop that finds no container is a shutdown all the same.
    assert run.last.state == S.SHUTDOWN


async def test_a_running_task_without_its_container_fails(make_task, start, pump):
    task = make_task(state=S.RUNNING)
    async with start(task) as run:
        await pump()
    assert run.last.state == S.FAILED
    assert run.last.err == f"No such container: web.1.{task.id}"


class FakeNetworking:
    """Records what the controller asks of the network data plane."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def attach(self, task: Task) -> ContainerNetworking:
        self.calls.append(("attach", task.id))
        return ContainerNetworking(
            host_config={"NetworkMode": f"local-copy-of-{task.id}"},
            networking_config={"EndpointsConfig": {"first": {"IPAMConfig": {}}}},
        )

    async def connect(self, task: Task, container_id: str) -> None:
        self.calls.append(("connect", container_id))

    async def detach(self, task: Task) -> None:
        self.calls.append(("detach", task.id))


def on_network(task: Task) -> Task:
    from swarmlet.models import IPAMConfig, Network, NetworkAttachment, NetworkIPAM

    network = Network(
        id="net",
        name="dockercoins",
        vni=4097,
        ipam=NetworkIPAM(config=[IPAMConfig(subnet="10.0.1.0/24")]),
    )
    return task.replace(
        networks_attachments=[NetworkAttachment(network=network, addresses=["10.0.1.5/24"])]
    )


async def test_a_task_on_a_network_is_created_on_it_and_released_when_it_ends(
    make_task, start, engine, pump
):
    networking = FakeNetworking()
    task = on_network(make_task("exits1:1"))
    async with start(task, networking=networking) as run:
        await pump()
    assert run.last.state == S.FAILED
    (container,) = engine.containers.values()
    assert container.host_config["NetworkMode"] == f"local-copy-of-{task.id}"
    assert container.config["NetworkingConfig"] == {
        "EndpointsConfig": {"first": {"IPAMConfig": {}}}
    }
    # Its other networks are joined once it exists, before it starts.
    assert networking.calls == [("attach", task.id), ("connect", container.id), ("detach", task.id)]


async def test_a_task_without_networks_never_touches_the_data_plane(make_task, start, engine, pump):
    networking = FakeNetworking()
    async with start(make_task("exits0:1"), networking=networking) as run:
        await pump()
    assert run.last.state == S.COMPLETE
    assert networking.calls == []
