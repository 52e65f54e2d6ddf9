"""The dispatcher against the in-memory store, a fake clock and a fake agent connection."""

from __future__ import annotations

import asyncio

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.dispatcher import Dispatcher, SessionRefused
from swarmlet.manager.store import MemoryBackend, Op, Store
from swarmlet.models import (
    Cluster,
    JoinTokens,
    Node,
    NodeDescription,
    NodeRole,
    NodeState,
    Task,
    TaskState,
    TaskStatus,
)
from swarmlet.protocol import Assignments, Message, Register, StatusUpdate

WORKER_TOKEN = "SWMTKN-1-" + "a" * 50 + "-" + "w" * 25
MANAGER_TOKEN = "SWMTKN-1-" + "a" * 50 + "-" + "m" * 25


class FakeConnection:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def assigned(self) -> list[str]:
        last = self.sent[-1]
        assert isinstance(last, Assignments)
        return [task.id for task in last.tasks]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Store:
    store = Store(MemoryBackend(), clock)
    tokens = JoinTokens(worker=WORKER_TOKEN, manager=MANAGER_TOKEN)
    store.commit([Op.create(Cluster(id="c1", join_tokens=tokens))])
    return store


def hello(token: str = WORKER_TOKEN, node_id: str = "") -> Register:
    return Register(
        node_id=node_id,
        join_token=token,
        description=NodeDescription(hostname="node2"),
        addr="192.168.254.12",
    )


def test_a_worker_token_admits_a_new_ready_worker(store: Store, clock: FakeClock) -> None:
    registered = Dispatcher(store, clock).register(hello())
    node = store.get(Node, registered.node_id)
    assert node.spec.role == NodeRole.WORKER
    assert node.status.state == NodeState.READY
    assert node.status.addr == "192.168.254.12"
    assert node.description.hostname == "node2"
    assert registered.heartbeat_period == 5.0


@pytest.mark.parametrize("token", ["", "SWMTKN-1-bad-token", MANAGER_TOKEN])
def test_other_tokens_are_refused(store: Store, clock: FakeClock, token: str) -> None:
    revision = store.revision
    with pytest.raises(SessionRefused):
        Dispatcher(store, clock).register(hello(token))
    assert store.revision == revision


def test_a_returning_node_keeps_its_id_and_a_removed_one_is_refused(
    store: Store, clock: FakeClock
) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = dispatcher.register(hello()).node_id
    assert dispatcher.register(hello(token="", node_id=node_id)).node_id == node_id
    assert len(store.all(Node)) == 1
    store.commit([Op.delete(store.get(Node, node_id))])
    with pytest.raises(SessionRefused, match="removed"):
        dispatcher.register(hello(token="", node_id=node_id))


def assigned_task(task_id: str, node_id: str, state: TaskState = TaskState.ASSIGNED) -> Task:
    return Task(id=task_id, service_id="s1", node_id=node_id, status=TaskStatus(state=state))


async def test_agents_get_their_assigned_tasks_on_every_change(
    store: Store, clock: FakeClock
) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = dispatcher.register(hello()).node_id
    store.commit([Op.create(assigned_task("t1", node_id)), Op.create(assigned_task("x", "n9"))])
    # A global task names its node before the scheduler accepts it: not assigned yet.
    store.commit([Op.create(assigned_task("t0", node_id, TaskState.PENDING))])
    connection = FakeConnection()
    dispatcher.attach(node_id, connection)
    assert connection.assigned() == ["t1"]

    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    store.commit([Op.create(assigned_task("t2", node_id))])
    await asyncio.sleep(0.01)
    assert connection.assigned() == ["t1", "t2"]
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


def test_status_updates_only_move_tasks_forward(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    node_id = dispatcher.register(hello()).node_id
    store.commit([Op.create(assigned_task("t1", node_id)), Op.create(assigned_task("t2", "n9"))])
    running = TaskStatus(state=TaskState.RUNNING, message="started")
    revision = store.revision
    dispatcher.update_statuses(
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
    dispatcher.update_statuses(
        node_id, [StatusUpdate(task_id="t1", status=TaskStatus(state=TaskState.PREPARING))]
    )
    assert store.get(Task, "t1").status == running


async def test_a_silent_node_is_down_after_three_heartbeats(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    quiet = dispatcher.register(hello()).node_id
    talking = dispatcher.register(hello()).node_id
    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    for _ in range(14):
        await clock.advance(1)
        dispatcher.heartbeat(talking)
    assert store.get(Node, quiet).status.state == NodeState.READY
    for _ in range(2):
        await clock.advance(1)
        dispatcher.heartbeat(talking)
    assert store.get(Node, quiet).status.state == NodeState.DOWN
    assert store.get(Node, quiet).status.addr == "192.168.254.12"
    assert store.get(Node, talking).status.state == NodeState.READY
    # Coming back makes it Ready again.
    dispatcher.register(hello(token="", node_id=quiet))
    assert store.get(Node, quiet).status.state == NodeState.READY
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
