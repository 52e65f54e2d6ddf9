"""The simulated engine: every state to RUNNING without containers, its start latency on the
injected clock, and its failure rate from a seeded RNG."""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from swarmlet.agent.describe import describe_node
from swarmlet.agent.task_controller import TaskController
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock
from swarmlet.errors import InvalidSpec
from swarmlet.ids import new_id
from swarmlet.models import ContainerSpec, Task, TaskSpec, TaskState, TaskStatus
from swarmlet.sim.engine import Behaviour, SimulatedEngine, start_delay, start_fails

S = TaskState
LABELS = {"com.docker.swarm.task.id": "t1", "com.docker.swarm.node.id": "n1"}


def make_task(image: str = "any/image:1", slot: int = 1) -> Task:
    return Task(
        id=new_id(),
        name=f"web.{slot}",
        service_id="web-id",
        service_name="web",
        slot=slot,
        node_id="n1",
        spec=TaskSpec(container_spec=ContainerSpec(image=image)),
        status=TaskStatus(state=TaskState.ASSIGNED),
        desired_state=TaskState.RUNNING,
    )


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


@asynccontextmanager
async def controlled(
    task: Task, engine: SimulatedEngine, clock: FakeClock
) -> AsyncIterator[tuple[TaskController, list[TaskStatus]]]:
    statuses: list[TaskStatus] = []
    controller = TaskController(task, engine, clock, statuses.append, node_id="n1")
    job = asyncio.create_task(controller.run())
    try:
        yield controller, statuses
    finally:
        await cancel_and_wait(job)


async def test_a_task_goes_through_every_state_to_running_after_the_start_latency():
    clock = FakeClock()
    engine = SimulatedEngine(Behaviour(start_latency=2.0), clock)
    task = make_task()
    async with controlled(task, engine, clock) as (controller, statuses):
        await settle()
        await clock.advance(1.0)
        # Any image is there to pull; the start is still under way.
        assert [s.state for s in statuses] == [S.ACCEPTED, S.PREPARING, S.READY, S.STARTING]
        (container,) = engine.containers.values()
        assert container.state == "created"
        await clock.advance(1.0)
        await settle()
        assert statuses[-1].state == S.RUNNING
        assert container.state == "running"
        assert engine.running == 1

        # It runs until it is stopped, and is kept as the task's history.
        controller.update(task.replace(desired_state=S.SHUTDOWN))
        await settle()
        assert [s.state for s in statuses][-2:] == [S.RUNNING, S.SHUTDOWN]
        assert container.state == "exited"
        assert engine.running == 0
        # Only what the agent reads back is kept of the create request.
        assert set(container.config) <= {"Image", "Labels", "StopSignal", "StopTimeout"}
        assert container.labels["com.docker.swarm.task.id"] == task.id
        assert container.host_config == {}


async def test_a_failed_start_fails_the_task_with_its_exit_code():
    clock = FakeClock()
    engine = SimulatedEngine(Behaviour(failure_rate=1.0, exit_code=3), clock)
    async with controlled(make_task(), engine, clock) as (_, statuses):
        await settle()
        assert statuses[-1].state == S.FAILED
        assert statuses[-1].err == "task: non-zero exit (3)"
    assert (engine.started, engine.failed, engine.running) == (1, 1, 0)


def test_start_delay_is_the_latency_spread_by_the_jitter():
    assert start_delay(Behaviour(), random.Random(1)) == 0.0
    assert start_delay(Behaviour(start_latency=0.5), random.Random(1)) == 0.5
    behaviour = Behaviour(start_latency=0.5, jitter=0.2)
    delays = [start_delay(behaviour, random.Random(seed)) for seed in range(200)]
    assert all(0.4 <= delay <= 0.6 for delay in delays)
    assert len(set(delays)) > 100
    # Seeded: a run replays.
    assert delays == [start_delay(behaviour, random.Random(seed)) for seed in range(200)]


def test_the_failure_rate_is_the_fraction_of_failed_starts():
    rng = random.Random(7)
    failures = [start_fails(Behaviour(failure_rate=0.2), rng) for _ in range(2000)]
    assert 300 < sum(failures) < 500
    replayed = random.Random(7)
    assert failures == [start_fails(Behaviour(failure_rate=0.2), replayed) for _ in range(2000)]
    assert not any(start_fails(Behaviour(), rng) for _ in range(100))
    assert all(start_fails(Behaviour(failure_rate=1.0), rng) for _ in range(100))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start_latency": -1}, "start latency must not be negative"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
        ({"failure_rate": -0.1}, "failure rate must be between 0 and 1"),
        ({"exit_code": 0}, "exit code must not be 0"),
    ],
)
def test_a_behaviour_that_makes_no_sense_is_refused(options, message):
    with pytest.raises(InvalidSpec, match=message):
        Behaviour(**options)


async def test_the_same_seed_fails_the_same_starts():
    async def failed_names(seed: int) -> list[str]:
        engine = SimulatedEngine(Behaviour(failure_rate=0.3), rng=random.Random(seed))
        for n in range(50):
            await engine.pull_image("img")
            cid = await engine.create_container(f"c{n}", {"Image": "img", "Labels": LABELS}, {})
            await engine.start_container(cid)
        return sorted(c.name for c in engine.containers.values() if c.state == "exited")

    first = await failed_names(11)
    assert first == await failed_names(11)
    assert 0 < len(first) < 50


async def test_the_node_describes_itself_with_its_resources_and_labels():
    engine = SimulatedEngine(cpus=2, memory=1024**3, labels={"sim.zone": "zone-1"})
    description = await describe_node(engine, "sim-0001")
    assert description.hostname == "sim-0001"
    assert description.resources.nano_cpus == 2 * 10**9
    assert description.resources.memory_bytes == 1024**3
    assert description.engine.labels == {"sim.zone": "zone-1"}
    assert description.engine.engine_version == "swarmlet-sim"


async def test_a_running_container_costs_little_memory():
    engine = SimulatedEngine()
    await engine.pull_image("img")
    labels = {**LABELS, "com.docker.swarm.service.name": "web", "extra": "x" * 40}
    count = 2000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(count):
            config = {"Image": "img", "Labels": dict(labels), "Env": ["A=1"] * 20}
            cid = await engine.create_container(f"web.{n}.{new_id()}", config, {"Mounts": []})
            await engine.start_container(cid)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert engine.running == count
    assert used / count < 4096, f"{used / count:.0f} bytes per container"
