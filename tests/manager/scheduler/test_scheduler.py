"""The control loop against the in-memory store and a fake clock."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.scheduler.scheduler import (
    ASSIGNED_MESSAGE,
    CONFIRMED_MESSAGE,
    PENDING_MESSAGE,
    Scheduler,
)
from swarmlet.manager.store import Action, Commit, Op, Store, Tx
from swarmlet.models import Node, NodeAvailability, NodeState, StoredObject, Task, TaskState
from tests.manager.scheduler.builders import GB, node, spec, task, tasks


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Store:
    return Store(clock=clock)


async def start(store: Store, clock: FakeClock, debounce: float = 0.0) -> asyncio.Task[None]:
    scheduler = Scheduler(store, clock, debounce=debounce)
    loop = asyncio.create_task(scheduler.run(), name="scheduler")
    await settle()
    return loop


@pytest.fixture
async def running(store: Store, clock: FakeClock) -> AsyncIterator[asyncio.Task[None]]:
    loop = await start(store, clock)
    yield loop
    await stop(loop)


async def stop(loop: asyncio.Task[None]) -> None:
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def settle() -> None:
    """Let the loop handle everything committed so far."""
    for _ in range(20):
        await asyncio.sleep(0)


async def create(store: Store, objects: Iterable[StoredObject]) -> None:
    await store.commit([Op.create(obj) for obj in objects])


async def update(store: Store, obj: StoredObject) -> None:
    await store.commit([Op.update(obj)])


def get(store: Store, task_id: str) -> Task:
    return store.get(Task, task_id)


def nodes_of(store: Store, task_ids: Iterable[str]) -> Counter[str | None]:
    return Counter(get(store, task_id).node_id for task_id in task_ids)


async def changed(store: Store, node_id: str, change: Callable[[Node], Node]) -> None:
    await store.update(lambda tx: tx.update(change(tx.get(Node, node_id))))


async def test_tasks_pending_at_start_are_assigned_and_spread(store, clock):
    await create(store, [node("a"), node("b"), node("c")])
    pending = tasks(10)
    await create(store, pending)
    loop = await start(store, clock)
    try:
        for t in pending:
            placed = get(store, t.id)
            assert placed.state == TaskState.ASSIGNED
            assert placed.status.message == ASSIGNED_MESSAGE
            assert placed.status.timestamp == clock.now()
            assert placed.status.err is None
        assert sorted(nodes_of(store, [t.id for t in pending]).values()) == [3, 3, 4]
    finally:
        await stop(loop)


async def test_tasks_written_later_are_assigned(store, running):
    await create(store, [node("a"), node("b")])
    pending = tasks(4)
    await create(store, pending)
    await settle()
    assert nodes_of(store, [t.id for t in pending]) == {"a": 2, "b": 2}


async def test_one_commit_per_pass(store, running):
    await create(store, [node("a"), node("b")])
    watch = store.watch()
    await create(store, tasks(6))
    await settle()
    revisions = {event.revision for event in watch.drain()}
    watch.close()
    assert len(revisions) == 2  # the orchestrator's create, the scheduler's assignment


async def test_an_unplaceable_task_is_explained_then_placed_when_a_node_fits(store, running):
    await create(store, [node("a"), node("b")])
    east_only = spec(constraints=["node.labels.zone==east"])
    await create(store, [task("t1", task_spec=east_only)])
    await settle()
    waiting = get(store, "t1")
    assert waiting.state == TaskState.PENDING
    assert waiting.node_id is None
    assert (
        waiting.status.err == "no suitable node (scheduling constraints not satisfied on 2 nodes)"
    )
    assert waiting.status.message == PENDING_MESSAGE

    await changed(store, "b", lambda n: n.replace(spec=n.spec.replace(labels={"zone": "east"})))
    await settle()
    placed = get(store, "t1")
    assert (placed.state, placed.node_id) == (TaskState.ASSIGNED, "b")
    assert placed.status.err is None


async def test_a_new_node_takes_waiting_tasks(store, running):
    await create(store, tasks(2))
    await settle()
    assert get(store, "svc-t0").status.err == "no suitable node"
    await create(store, [node("late")])
    await settle()
    assert nodes_of(store, ["svc-t0", "svc-t1"]) == {"late": 2}


async def test_a_node_becoming_ready_and_active_takes_waiting_tasks(store, running):
    await create(store, [node("a", state=NodeState.DOWN, availability=NodeAvailability.DRAIN)])
    await create(store, [task("t1")])
    await settle()
    assert get(store, "t1").status.err == "no suitable node (1 node not available for new tasks)"

    await changed(store, "a", lambda n: n.replace(status=n.status.replace(state=NodeState.READY)))
    await settle()
    assert get(store, "t1").node_id is None
    await changed(
        store,
        "a",
        lambda n: n.replace(spec=n.spec.replace(availability=NodeAvailability.ACTIVE)),
    )
    await settle()
    assert get(store, "t1").node_id == "a"


async def test_an_unchanged_explanation_is_not_written_again(store, running):
    await create(store, [node("a", state=NodeState.DOWN)])
    await create(store, [task("t1")])
    await settle()
    explained = get(store, "t1")
    assert explained.status.err == "no suitable node (1 node not available for new tasks)"

    # Node changes that change nothing for the task: no new write.
    await changed(store, "a", lambda n: n.replace(spec=n.spec.replace(labels={"x": "1"})))
    await create(store, [node("b", state=NodeState.DOWN)])
    await settle()
    rewritten = get(store, "t1")
    assert rewritten.status.err == "no suitable node (2 nodes not available for new tasks)"
    await changed(store, "a", lambda n: n.replace(spec=n.spec.replace(labels={"x": "2"})))
    await settle()
    assert get(store, "t1").version == rewritten.version


async def test_a_task_that_ends_makes_room(store, running):
    await create(store, [node("a", memory=4 * GB)])
    big = spec(memory=3 * GB)
    await create(store, [task("first", task_spec=big)])
    await settle()
    await create(store, [task("second", task_spec=big)])
    await settle()
    assert get(store, "first").node_id == "a"
    assert get(store, "second").status.err == (
        "no suitable node (insufficient resources on 1 node)"
    )

    first = get(store, "first")
    await update(store, first.replace(status=first.status.replace(state=TaskState.FAILED)))
    await settle()
    assert get(store, "second").node_id == "a"


async def test_a_deleted_task_makes_room(store, running):
    await create(store, [node("a")])
    one_per_node = spec(max_replicas=1)
    await create(store, [task("first", task_spec=one_per_node)])
    await settle()
    await create(store, [task("second", task_spec=one_per_node)])
    await settle()
    assert get(store, "second").status.err == (
        "no suitable node (max replicas per node limit exceed)"
    )
    await store.commit([Op.delete(get(store, "first"))])
    await settle()
    assert get(store, "second").node_id == "a"


async def test_preset_tasks_are_confirmed_or_explained(store, running):
    await create(store, [node("a"), node("b", availability=NodeAvailability.DRAIN)])
    await create(store, [task("ga", "agent", node_id="a"), task("gb", "agent", node_id="b")])
    await settle()
    confirmed = get(store, "ga")
    assert (confirmed.state, confirmed.node_id) == (TaskState.ASSIGNED, "a")
    assert confirmed.status.message == CONFIRMED_MESSAGE
    waiting = get(store, "gb")
    assert (waiting.state, waiting.node_id) == (TaskState.PENDING, "b")
    assert waiting.status.err == "1 node not available for new tasks"


async def test_only_pending_tasks_meant_to_run_are_scheduled(store, running):
    await create(store, [node("a")])
    await create(
        store,
        [
            task("new", state=TaskState.NEW),
            task("shutdown", desired=TaskState.SHUTDOWN),
            task("removed", desired=TaskState.REMOVE),
            task("restarting", desired=TaskState.READY),
        ],
    )
    await settle()
    assert get(store, "new").node_id is None
    assert get(store, "new").state == TaskState.NEW
    assert get(store, "shutdown").node_id is None
    assert get(store, "removed").node_id is None
    assert get(store, "restarting").node_id == "a"


async def test_a_task_moved_to_pending_later_is_scheduled(store, running):
    await create(store, [node("a")])
    await create(store, [task("t1", state=TaskState.NEW)])
    await settle()
    allocated = get(store, "t1")
    await update(store, allocated.replace(status=allocated.status.replace(state=TaskState.PENDING)))
    await settle()
    assert get(store, "t1").node_id == "a"


R = TypeVar("R")


class ConflictingStore(Store):
    """Another writer changes a task just before the scheduler's first commit lands."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.conflicts = 0
        self.armed = False

    async def update(self, fn: Callable[[Tx], R]) -> Commit[R]:
        # A dry run on a transaction of its own shows what ``fn`` writes (it may run again).
        tx = Tx(self)
        fn(tx)
        if self.armed and tx.ops and tx.ops[0].action is Action.UPDATE:
            self.armed = False
            self.conflicts += 1
            target = tx.ops[0].obj
            assert isinstance(target, Task)
            current = self.get(Task, target.id)
            await super().commit([Op.update(current.replace(labels={"touched": "yes"}))])
        return await super().update(fn)


async def test_a_version_conflict_is_retried_from_the_store_on_the_next_pass(clock):
    store = ConflictingStore(clock)
    await create(store, [node("a")])
    loop = await start(store, clock)
    try:
        store.armed = True
        await create(store, [task("t1")])
        await settle()
        assert store.conflicts == 1
        assert not loop.done()
        placed = get(store, "t1")
        assert placed.node_id == "a"
        assert placed.labels == {"touched": "yes"}  # the other writer's change is kept
    finally:
        await stop(loop)


async def test_debounce_waits_on_the_clock_then_decides_once(store, clock):
    await create(store, [node("a"), node("b")])
    loop = await start(store, clock, debounce=0.05)
    try:
        watch = store.watch()
        await create(store, tasks(2))
        await settle()
        await create(store, [task("late")])
        await settle()
        assert get(store, "late").node_id is None
        await clock.advance(0.05)
        await settle()
        assert sorted(nodes_of(store, ["svc-t0", "svc-t1", "late"]).values()) == [1, 2]
        revisions = {event.revision for event in watch.drain()}
        watch.close()
        assert len(revisions) == 3  # two creates, one scheduling commit
    finally:
        await stop(loop)
