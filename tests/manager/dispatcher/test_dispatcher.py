"""The dispatcher against the in-memory store, a fake clock and a fake agent connection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import Unavailable
from swarmlet.manager.dispatcher import Dispatcher, SessionRefused
from swarmlet.manager.dispatcher.statuses import STATUS_BATCH_S
from swarmlet.manager.store import Event, MemoryBackend, Op, Store
from swarmlet.models import (
    Cluster,
    Node,
    NodeDescription,
    NodeState,
    NodeStatus,
    Task,
    TaskState,
    TaskStatus,
    TLSInfo,
)
from swarmlet.protocol import AssignmentChanges, Assignments, Register, StatusUpdate
from tests.manager.dispatcher import fakes


class FakeConnection(fakes.FakeConnection):
    def assigned(self) -> list[str]:
        return [task.id for task in self.assignments()[-1].tasks]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock) -> Store:
    store = Store(MemoryBackend(), clock)
    await store.commit([Op.create(Cluster(id="c1"))])
    return store


async def settle() -> None:
    """Let every task run until it waits (on the store, the fake clock or a backend)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def started(dispatcher: Dispatcher) -> asyncio.Task[None]:
    """The dispatcher's loops, running, past their first pass."""
    runner = asyncio.create_task(dispatcher.run())
    await settle()
    return runner


async def stopped(runner: asyncio.Task[None]) -> None:
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def batch_time(clock: FakeClock) -> None:
    """The status writer's batch time passes: the reports waiting are written."""
    await settle()
    await clock.advance(STATUS_BATCH_S)
    await settle()


TLS = TLSInfo(trust_root="root", cert_issuer_subject="s", cert_issuer_public_key="k")
HELLO = Register(description=NodeDescription(hostname="node2", tls_info=TLS), addr="192.168.254.12")


async def joined(store: Store) -> str:
    """A node as the CA leaves it after a join: known, with its TLS identity, not yet Ready."""
    node = Node(
        id=f"n{len(store.all(Node)) + 1}",
        status=NodeStatus(state=NodeState.UNKNOWN),
    )
    await store.commit([Op.create(node)])
    return node.id


async def test_a_registered_node_is_ready_and_described_by_its_agent(
    store: Store, clock: FakeClock
) -> None:
    node_id = await joined(store)
    registered = await Dispatcher(store, clock).register(node_id, HELLO)
    node = store.get(Node, registered.node_id)
    assert node.status.state == NodeState.READY
    assert node.status.addr == "192.168.254.12"
    assert node.description.hostname == "node2"
    # What it trusts and who issued its certificate, as its agent says.
    assert node.description.tls_info == TLS
    assert registered.heartbeat_period == 5.0


async def test_a_removed_node_is_refused(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = await joined(store)
    await dispatcher.register(node_id, HELLO)
    await store.commit([Op.delete(store.get(Node, node_id))])
    with pytest.raises(SessionRefused, match="removed"):
        await dispatcher.register(node_id, HELLO)


async def test_removing_a_node_closes_its_open_session(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = await joined(store)
    await dispatcher.register(node_id, HELLO)
    connection = FakeConnection()
    dispatcher.attach(node_id, connection)
    runner = await started(dispatcher)
    await store.commit([Op.delete(store.get(Node, node_id))])
    await settle()
    assert connection.closed
    await stopped(runner)


def assigned_task(task_id: str, node_id: str, state: TaskState = TaskState.ASSIGNED) -> Task:
    return Task(id=task_id, service_id="s1", node_id=node_id, status=TaskStatus(state=state))


async def test_agents_get_their_assigned_tasks_on_every_change(
    store: Store, clock: FakeClock
) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit(
        [Op.create(assigned_task("t1", node_id)), Op.create(assigned_task("x", "n9"))]
    )
    # A global task names its node before the scheduler accepts it: not assigned yet.
    await store.commit([Op.create(assigned_task("t0", node_id, TaskState.PENDING))])
    connection = FakeConnection()
    dispatcher.attach(node_id, connection)
    assert connection.assigned() == ["t1"]

    runner = await started(dispatcher)
    await store.commit([Op.create(assigned_task("t2", node_id))])
    await settle()
    assert connection.assigned() == ["t1", "t2"]
    await stopped(runner)


async def test_after_the_whole_set_a_session_is_sent_only_what_changed(
    store: Store, clock: FakeClock
) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit([Op.create(assigned_task("t1", node_id))])
    connection = FakeConnection()
    dispatcher.attach(node_id, connection)
    runner = await started(dispatcher)
    await store.commit([Op.create(assigned_task("t2", node_id))])
    await settle()
    t1 = store.get(Task, "t1")
    (stopping,) = await store.commit([Op.update(t1.replace(desired_state=TaskState.SHUTDOWN))])
    await settle()
    await store.commit([Op.delete(store.get(Task, "t2"))])
    await settle()
    sets = [m for m in connection.sent if isinstance(m, Assignments | AssignmentChanges)]
    assert [(type(m), [t.id for t in m.tasks]) for m in sets] == [
        (Assignments, ["t1"]),
        (AssignmentChanges, ["t2"]),
        (AssignmentChanges, ["t1"]),
        (AssignmentChanges, []),
    ]
    assert sets[2].tasks == [stopping]
    assert [m.removed for m in sets[1:] if isinstance(m, AssignmentChanges)] == [[], [], ["t2"]]
    # A new session is sent the whole set again.
    again = FakeConnection()
    dispatcher.attach(node_id, again)
    (whole,) = again.assignments()
    assert type(again.sent[again.sent.index(whole)]) is Assignments
    assert whole.tasks == [stopping]
    await stopped(runner)


async def test_a_nodes_own_reports_are_not_sent_back_to_it(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit([Op.create(assigned_task("t1", node_id))])
    connection = FakeConnection()
    dispatcher.attach(node_id, connection)
    runner = await started(dispatcher)
    sent = len(connection.sent)
    for state in (TaskState.ACCEPTED, TaskState.PREPARING, TaskState.RUNNING):
        update = StatusUpdate(task_id="t1", status=TaskStatus(state=state))
        dispatcher.report_statuses(node_id, [update])
        await batch_time(clock)
        assert store.get(Task, "t1").status.state == state
    assert len(connection.sent) == sent  # the agent knows what it reported
    # A change from anywhere else is sent.
    await store.commit([Op.update(store.get(Task, "t1").replace(desired_state=TaskState.SHUTDOWN))])
    await settle()
    assert len(connection.sent) == sent + 1
    await stopped(runner)


async def test_a_new_run_sends_connected_agents_what_changed_before_it(
    store: Store, clock: FakeClock
) -> None:
    # Sessions attached before a term starts (the port opens none then: see test_leading.py)
    # are sent what changed before it when it starts.
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    removed = (await dispatcher.register(await joined(store), HELLO)).node_id
    connection, removed_connection = FakeConnection(), FakeConnection()
    dispatcher.attach(node_id, connection)
    dispatcher.attach(removed, removed_connection)
    assert connection.assigned() == []
    await store.commit(
        [Op.create(assigned_task("t1", node_id)), Op.delete(store.get(Node, removed))]
    )
    runner = await started(dispatcher)
    assert connection.assigned() == ["t1"]
    assert removed_connection.closed
    assert not connection.closed
    await stopped(runner)


async def test_reports_received_together_are_written_in_one_commit(
    store: Store, clock: FakeClock
) -> None:
    dispatcher = Dispatcher(store, clock)
    first = (await dispatcher.register(await joined(store), HELLO)).node_id
    second = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit(
        [Op.create(assigned_task("t1", first)), Op.create(assigned_task("t2", second))]
    )
    runner = await started(dispatcher)
    before = store.revision
    running = TaskStatus(state=TaskState.RUNNING)
    dispatcher.report_statuses(first, [StatusUpdate(task_id="t1", status=running)])
    await settle()
    await clock.advance(STATUS_BATCH_S / 2)
    dispatcher.report_statuses(second, [StatusUpdate(task_id="t2", status=running)])
    # t2 is not the first node's: that part of its report is dropped, as always.
    dispatcher.report_statuses(
        first, [StatusUpdate(task_id="t2", status=TaskStatus(state=TaskState.FAILED))]
    )
    await settle()
    assert store.revision == before  # not yet: the batch waits a moment for more
    await clock.advance(STATUS_BATCH_S / 2)
    await settle()
    assert store.revision == before + 1
    assert store.get(Task, "t1").status == running
    assert store.get(Task, "t2").status == running
    await stopped(runner)


async def test_reports_wait_for_the_dispatcher_to_run(store: Store, clock: FakeClock) -> None:
    # The status writer is one of the dispatcher's loops: only the leader writes.
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit([Op.create(assigned_task("t1", node_id))])
    report(dispatcher, node_id, "t1", TaskState.RUNNING)
    await settle()
    await clock.advance(STATUS_BATCH_S)
    assert store.get(Task, "t1").state == TaskState.ASSIGNED
    runner = await started(dispatcher)
    await batch_time(clock)
    assert store.get(Task, "t1").state == TaskState.RUNNING
    await stopped(runner)


async def test_status_updates_only_move_tasks_forward(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit(
        [Op.create(assigned_task("t1", node_id)), Op.create(assigned_task("t2", "n9"))]
    )
    running = TaskStatus(state=TaskState.RUNNING, message="started")
    revision = store.revision
    await dispatcher.update_statuses(
        node_id,
        [
            StatusUpdate(task_id="t1", status=TaskStatus(state=TaskState.STARTING)),
            StatusUpdate(task_id="t1", status=running),
            # Not this node's task, and an unknown task: both ignored.
            StatusUpdate(task_id="t2", status=running),
            StatusUpdate(task_id="nope", status=running),
        ],
    )
    assert store.revision == revision + 1
    assert store.get(Task, "t1").status == running
    assert store.get(Task, "t2").status.state == TaskState.ASSIGNED
    await dispatcher.update_statuses(
        node_id, [StatusUpdate(task_id="t1", status=TaskStatus(state=TaskState.PREPARING))]
    )
    assert store.get(Task, "t1").status == running


async def test_a_node_whose_session_ends_is_down_a_period_later_unless_it_comes_back(
    store: Store, clock: FakeClock
) -> None:
    # A daemon that dies has its connection closed by the kernel: no need to wait for three
    # heartbeats that cannot come. One period is left for an agent that is alive to reconnect.
    dispatcher = Dispatcher(store, clock)
    gone, back = await joined(store), await joined(store)
    connections = {node_id: FakeConnection() for node_id in (gone, back)}
    for node_id, connection in connections.items():
        await dispatcher.register(node_id, HELLO)
        dispatcher.attach(node_id, connection)
    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    await clock.advance(3)
    for node_id, connection in connections.items():
        dispatcher.detach(node_id, connection)
    await clock.advance(1)
    await dispatcher.register(back, HELLO)
    dispatcher.attach(back, FakeConnection())
    await clock.advance(3.9)
    assert store.get(Node, gone).status.state == NodeState.READY
    await clock.advance(0.2)
    assert store.get(Node, gone).status.state == NodeState.DOWN
    assert store.get(Node, back).status.state == NodeState.READY
    # The reconnected node (registered at 4 s) is held to heartbeats again: Down three periods
    # after its last word.
    await clock.advance(10.8)
    assert store.get(Node, back).status.state == NodeState.READY
    await clock.advance(0.2)
    assert store.get(Node, back).status.state == NodeState.DOWN
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_a_silent_node_is_down_after_three_heartbeats(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    quiet = (await dispatcher.register(await joined(store), HELLO)).node_id
    talking = (await dispatcher.register(await joined(store), HELLO)).node_id
    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    for _ in range(14):
        await clock.advance(1)
        await dispatcher.heartbeat(talking)
    assert store.get(Node, quiet).status.state == NodeState.READY
    for _ in range(2):
        await clock.advance(1)
        await dispatcher.heartbeat(talking)
    assert store.get(Node, quiet).status.state == NodeState.DOWN
    assert store.get(Node, quiet).status.addr == "192.168.254.12"
    assert store.get(Node, talking).status.state == NodeState.READY
    # A heartbeat on its still open session makes it Ready again, as a new session does.
    await dispatcher.heartbeat(quiet)
    assert store.get(Node, quiet).status.state == NodeState.READY
    assert store.get(Node, quiet).status.addr == "192.168.254.12"
    for _ in range(16):
        await clock.advance(1)
        await dispatcher.heartbeat(talking)
    assert store.get(Node, quiet).status.state == NodeState.DOWN
    await dispatcher.register(quiet, HELLO)
    assert store.get(Node, quiet).status.state == NodeState.READY
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


class SlowBackend(MemoryBackend):
    """A backend whose writes wait until the test lets them through, and fail when told to
    (as a full disk would)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.failing = False
        self.written: list[int] = []

    async def write(self, revision: int, events: Sequence[Event]) -> None:
        await self.open.wait()
        if self.failing:
            raise Unavailable("the disk is full")
        self.written.append(revision)


def report(dispatcher: Dispatcher, node_id: str, task_id: str, state: TaskState) -> None:
    status = TaskStatus(state=state)
    dispatcher.report_statuses(node_id, [StatusUpdate(task_id=task_id, status=status)])


async def test_reports_that_come_during_a_commit_are_the_next_batch(clock: FakeClock) -> None:
    backend = SlowBackend()
    store = Store(backend, clock)
    await store.commit([Op.create(Cluster(id="c1"))])
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit(
        [Op.create(assigned_task("t1", node_id)), Op.create(assigned_task("t2", node_id))]
    )
    runner = await started(dispatcher)
    before = store.revision
    backend.open.clear()
    report(dispatcher, node_id, "t1", TaskState.STARTING)
    await batch_time(clock)  # the first batch's commit is under way
    report(dispatcher, node_id, "t1", TaskState.RUNNING)
    report(dispatcher, node_id, "t2", TaskState.RUNNING)
    await batch_time(clock)
    await batch_time(clock)
    assert store.revision == before  # one commit at a time: the second batch waits
    backend.open.set()
    await settle()
    assert store.revision == before + 1
    await batch_time(clock)
    # The first report alone, then the two that came during its commit, together.
    assert backend.written[-2:] == [before + 1, before + 2]
    assert store.revision == before + 2
    assert store.get(Task, "t1").state == TaskState.RUNNING
    assert store.get(Task, "t2").state == TaskState.RUNNING
    await stopped(runner)


async def test_a_failed_commit_loses_its_batch_only(clock: FakeClock) -> None:
    backend = SlowBackend()
    store = Store(backend, clock)
    await store.commit([Op.create(Cluster(id="c1"))])
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit(
        [Op.create(assigned_task("t1", node_id)), Op.create(assigned_task("t2", node_id))]
    )
    runner = await started(dispatcher)
    backend.open.clear()
    backend.failing = True
    report(dispatcher, node_id, "t1", TaskState.RUNNING)
    await batch_time(clock)
    report(dispatcher, node_id, "t2", TaskState.RUNNING)
    backend.open.set()
    await settle()  # the first commit fails
    backend.failing = False
    await batch_time(clock)
    assert store.get(Task, "t1").state == TaskState.ASSIGNED  # as before: not written
    assert store.get(Task, "t2").state == TaskState.RUNNING  # the writer went on
    await stopped(runner)


async def test_a_stopping_dispatcher_writes_the_reports_it_has_before_it_stops(
    store: Store, clock: FakeClock
) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit([Op.create(assigned_task("t1", node_id))])
    runner = await started(dispatcher)
    report(dispatcher, node_id, "t1", TaskState.RUNNING)
    await settle()  # the batch waits on the clock
    await stopped(runner)
    assert store.get(Task, "t1").state == TaskState.RUNNING


async def test_reports_are_written_when_the_dispatcher_stops_before_its_loops_begin(
    store: Store, clock: FakeClock
) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit([Op.create(assigned_task("t1", node_id))])
    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    report(dispatcher, node_id, "t1", TaskState.RUNNING)
    await stopped(runner)
    assert store.get(Task, "t1").state == TaskState.RUNNING


async def test_reports_are_written_when_the_dispatcher_stops_during_a_commit(
    clock: FakeClock,
) -> None:
    backend = SlowBackend()
    store = Store(backend, clock)
    await store.commit([Op.create(Cluster(id="c1"))])
    dispatcher = Dispatcher(store, clock)
    node_id = (await dispatcher.register(await joined(store), HELLO)).node_id
    await store.commit(
        [Op.create(assigned_task("t1", node_id)), Op.create(assigned_task("t2", node_id))]
    )
    runner = await started(dispatcher)
    backend.open.clear()
    report(dispatcher, node_id, "t1", TaskState.RUNNING)
    await batch_time(clock)  # the commit is under way
    report(dispatcher, node_id, "t2", TaskState.RUNNING)
    runner.cancel()
    await settle()
    backend.open.set()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert store.get(Task, "t1").state == TaskState.RUNNING
    assert store.get(Task, "t2").state == TaskState.RUNNING
