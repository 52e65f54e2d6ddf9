"""The worker against the fake engine: reconciling assignments with containers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.worker import Worker
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock
from swarmlet.models import Task, TaskState
from swarmlet.protocol import StatusUpdate

S = TaskState
NODE = "node1"


def labels_of(task: Task, node_id: str = NODE) -> dict[str, str]:
    return {"com.docker.swarm.node.id": node_id, "com.docker.swarm.task.id": task.id}


class Session:
    """The report callback: records each batch; raises while ``down``."""

    def __init__(self) -> None:
        self.batches: list[list[StatusUpdate]] = []
        self.down = False

    async def report(self, updates: list[StatusUpdate]) -> None:
        if self.down:
            raise ConnectionError("no session to the manager")
        self.batches.append(updates)

    def last_state(self, task: Task) -> TaskState | None:
        states = [u.status.state for batch in self.batches for u in batch if u.task_id == task.id]
        return states[-1] if states else None


@pytest.fixture
def engine(clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(clock)
    engine.add_image("busybox")
    engine.add_image("exits1:1", exit_code=1)
    return engine


@pytest.fixture
def session() -> Session:
    return Session()


@pytest.fixture
async def worker(engine: FakeEngine, clock: FakeClock, session: Session) -> AsyncIterator[Worker]:
    worker = Worker(engine, NODE, session.report, clock, container_labels={"lab": "swl"})
    job = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        if job.done():
            job.result()  # the worker crashed: fail the test with its error
        await cancel_and_wait(job)


def states(worker: Worker) -> dict[str, TaskState]:
    return {u.task_id: u.status.state for u in worker.statuses()}


async def test_runs_assigned_tasks_and_reports_in_batches(worker, make_task, engine, session, pump):
    web1, web2 = make_task(slot=1), make_task(slot=2)
    await worker.assign([web1, web2])
    await pump()
    assert states(worker) == {web1.id: S.RUNNING, web2.id: S.RUNNING}
    assert {c.name for c in engine.containers.values()} == {
        f"web.1.{web1.id}",
        f"web.2.{web2.id}",
    }
    assert all(c.labels["lab"] == "swl" for c in engine.containers.values())
    # Everything happened within one batch window: one batch, the latest status of each task.
    assert len(session.batches) == 1
    assert sorted(u.status.state for u in session.batches[0]) == [S.RUNNING, S.RUNNING]


async def test_reports_a_failed_task(worker, make_task, session, pump):
    task = make_task("exits1:1")
    await worker.assign([task])
    await pump()
    assert session.last_state(task) == S.FAILED
    [update] = worker.statuses()
    assert update.status.err == "task: non-zero exit (1)"


async def test_desired_state_changes_reach_the_controller(worker, make_task, engine, pump):
    task = make_task()
    await worker.assign([task])
    await pump()
    await worker.assign([task.replace(desired_state=S.SHUTDOWN)])
    await pump()
    assert states(worker) == {task.id: S.SHUTDOWN}
    assert engine.container(f"web.1.{task.id}").state == "exited"  # kept while assigned


async def test_unassigned_tasks_lose_their_containers(worker, make_task, engine, pump):
    keep, drop = make_task(slot=1), make_task(slot=2)
    await worker.assign([keep, drop])
    await pump()
    await worker.assign([keep])
    await pump()
    assert [c.name for c in engine.containers.values()] == [f"web.1.{keep.id}"]
    assert states(worker) == {keep.id: S.RUNNING}


async def test_a_terminal_task_needs_no_controller_but_keeps_its_container(
    worker, make_task, engine, pump
):
    task = make_task(state=S.FAILED, desired=S.SHUTDOWN)
    container = engine.run_container(f"web.1.{task.id}", "busybox", labels_of(task))
    engine.exit(container.id, 1)
    await worker.assign([task])
    await pump()
    assert worker.statuses() == []
    assert container.id in engine.containers


async def test_adopts_its_containers_after_a_restart(engine, clock, session, make_task, pump):
    running = make_task(slot=1, state=S.RUNNING)
    exited = make_task(slot=2, state=S.RUNNING)
    stale = make_task(slot=3, state=S.RUNNING)
    others = make_task(slot=4, state=S.RUNNING)
    kept = engine.run_container(f"web.1.{running.id}", "busybox", labels_of(running))
    done = engine.run_container(f"web.2.{exited.id}", "busybox", labels_of(exited))
    engine.exit(done.id, 0)
    gone = engine.run_container(f"web.3.{stale.id}", "busybox", labels_of(stale))
    foreign = engine.run_container("other", "busybox", labels_of(others, node_id="node2"))

    worker = Worker(engine, NODE, session.report, clock)
    job = asyncio.create_task(worker.run())
    try:
        await pump()
        # Before the first assignment the worker does not know what is its own: it keeps all.
        assert set(engine.containers) == {kept.id, done.id, gone.id, foreign.id}
        await worker.assign([running, exited])
        await pump()
    finally:
        if job.done():
            job.result()
        await cancel_and_wait(job)
    assert set(engine.containers) == {kept.id, done.id, foreign.id}
    assert kept.state == "running"
    assert states(worker) == {running.id: S.RUNNING, exited.id: S.COMPLETE}
    assert session.last_state(running) == S.RUNNING
    assert len(engine.containers) == 3  # nothing created for the adopted tasks


async def test_report_failures_are_kept_for_the_resend(worker, make_task, session, engine, pump):
    first, second = make_task(slot=1), make_task(slot=2)
    session.down = True
    await worker.assign([first])
    await pump()
    assert session.batches == []
    # What the session resends after it reconnects:
    assert states(worker) == {first.id: S.RUNNING}
    session.down = False
    await worker.assign([first, second])
    await pump()
    # The update that could not be sent goes with the next batch.
    assert {u.task_id: u.status.state for u in session.batches[0]} == {
        first.id: S.RUNNING,
        second.id: S.RUNNING,
    }


async def test_statuses_hold_the_last_status_of_every_task(worker, make_task, engine, pump):
    tasks = [make_task(slot=i) for i in range(1, 4)]
    await worker.assign(tasks)
    await pump()
    engine.exit(f"web.2.{tasks[1].id}", 0)
    await pump()
    assert states(worker) == {
        tasks[0].id: S.RUNNING,
        tasks[1].id: S.COMPLETE,
        tasks[2].id: S.RUNNING,
    }
    for update in worker.statuses():
        assert update.status.timestamp is not None


async def test_an_unassigned_task_is_stopped_with_its_grace_period(worker, make_task, engine, pump):
    engine.add_image("stubborn:1", ignores_stop_signal=True)
    task = make_task("stubborn:1", stop_grace_period=2_000_000_000)
    await worker.assign([task])
    await pump()
    container = engine.container(f"web.1.{task.id}")
    await worker.assign([])
    await pump(1.0)
    assert container.state == "running"
    assert container.stopped_with == ("SIGTERM", 2)
    await pump(1.5)
    assert engine.containers == {}
    assert worker.statuses() == []


async def test_a_task_unassigned_while_preparing_leaves_nothing(worker, make_task, engine, pump):
    engine.add_registry_image("slow:1")
    task = make_task("slow:1")
    await worker.assign([task])
    for _ in range(3):  # mid-way: the pull or the create is under way
        await asyncio.sleep(0)
    await worker.assign([])
    await pump()
    assert engine.containers == {}
