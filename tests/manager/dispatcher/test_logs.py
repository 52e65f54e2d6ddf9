"""The log broker: which nodes a subscription asks, what it ends with, and the nodes that
are down, go away or never answer."""

from __future__ import annotations

import asyncio
import base64

from swarmlet.clock import FakeClock
from swarmlet.manager.dispatcher.logs import (
    NODE_SILENCE,
    LogBroker,
    LogOptions,
    LogSelector,
    Subscription,
    broker_for,
    incomplete,
    plan,
)
from swarmlet.manager.store import Store
from swarmlet.models import NodeState, TaskState
from swarmlet.protocol import LogEntry, LogsBatch, LogsCancel, LogsDone, LogsSubscribe
from tests.manager.api.fakes import add_node, add_service, add_task
from tests.manager.dispatcher.fakes import FakeConnection


def entry(task_id: str, text: str, service_id: str = "s") -> LogEntry:
    return LogEntry(
        task_id=task_id,
        service_id=service_id,
        stream="stdout",
        timestamp="2026-01-02T03:04:05.000000000Z",
        data=base64.b64encode(text.encode()).decode(),
    )


def subscriptions(connection: FakeConnection) -> list[LogsSubscribe]:
    return [m for m in connection.sent if isinstance(m, LogsSubscribe)]


async def drain(subscription: Subscription) -> list[str]:
    """Every line until the subscription is finished."""
    lines: list[str] = []
    while (received := await subscription.next()) is not None:
        for _, entries in received:
            lines += [base64.b64decode(e.data).decode() for e in entries]
    return lines


async def test_plan_asks_the_connected_nodes_of_running_tasks_and_names_the_others() -> None:
    store = Store(clock=FakeClock())
    up, gone, down = [await add_node(store, name) for name in ("up", "gone", "down")]
    await store.commit([])
    service = await add_service(store, "web", replicas=4)
    running = await add_task(store, service, up)
    await add_task(store, service, gone, slot=2)
    await add_task(store, service, down, slot=3)
    pending = await add_task(store, service, None, state=TaskState.PENDING, slot=4)
    nodes = {
        n.id: n for n in (up, gone, down.replace(status=down.status.replace(state=NodeState.DOWN)))
    }
    tasks = store.tasks_of_service(service.id)
    selector = LogSelector(service_ids=(service.id,))

    decided = plan(selector, False, tasks, nodes, {up.id, down.id})
    assert decided.ask == {up.id}
    assert set(decided.unavailable) == {gone.id, down.id}
    # Not following, a service's task that is not running yet is left out (SwarmKit's match).
    assert decided.unscheduled == ()

    following = plan(selector, True, tasks, nodes, {up.id, down.id})
    assert following.unscheduled == (pending.id,)
    # A task named on its own is always in.
    by_task = plan(LogSelector(task_ids=(pending.id,)), False, tasks, nodes, set())
    assert by_task.unscheduled == (pending.id,)
    assert plan(LogSelector(task_ids=(running.id,)), False, tasks, nodes, {up.id}).ask == {up.id}


def test_the_incomplete_stream_error_is_swarmkits() -> None:
    assert incomplete([]) == ""
    assert incomplete(["node a is not available", "task t has not been scheduled"]) == (
        "warning: incomplete log stream. some logs could not be retrieved for the following"
        " reasons: node a is not available, task t has not been scheduled"
    )


async def test_a_subscription_ends_when_every_asked_node_is_done() -> None:
    store = Store(clock=FakeClock())
    one, two = await add_node(store, "one"), await add_node(store, "two")
    service = await add_service(store, "web", replicas=2)
    first, second = await add_task(store, service, one), await add_task(store, service, two, slot=2)
    broker = LogBroker(store, FakeClock())
    agents = {one.id: FakeConnection(), two.id: FakeConnection()}
    for node_id, connection in agents.items():
        broker.connected(node_id, connection)

    async with broker.subscribe(LogSelector(service_ids=(service.id,)), LogOptions()) as sub:
        (asked,) = subscriptions(agents[one.id])
        assert asked.service_ids == [service.id]
        assert not asked.follow
        broker.received(one.id, LogsBatch(id=sub.id, entries=[entry(first.id, "a\n")]))
        broker.received(one.id, LogsDone(id=sub.id))
        broker.received(two.id, LogsBatch(id=sub.id, entries=[entry(second.id, "b\n")]))
        # A message for another subscription is not this one's.
        broker.received(two.id, LogsBatch(id="other", entries=[entry(second.id, "x\n")]))
        broker.received(two.id, LogsDone(id=sub.id))
        assert sorted(await drain(sub)) == ["a\n", "b\n"]
        assert sub.error() == ""
    # Both nodes are told the subscription is over.
    assert all(LogsCancel(id=sub.id) in agent.sent for agent in agents.values())


async def test_a_node_not_connected_is_reported_and_the_others_stream() -> None:
    store = Store(clock=FakeClock())
    up, gone = await add_node(store, "up"), await add_node(store, "gone")
    service = await add_service(store, "web", replicas=2)
    task = await add_task(store, service, up)
    await add_task(store, service, gone, slot=2)
    broker = LogBroker(store, FakeClock())
    broker.connected(up.id, FakeConnection())

    async with broker.subscribe(LogSelector(service_ids=(service.id,)), LogOptions()) as sub:
        broker.received(up.id, LogsBatch(id=sub.id, entries=[entry(task.id, "hello\n")]))
        broker.received(up.id, LogsDone(id=sub.id))
        assert await drain(sub) == ["hello\n"]
    assert sub.error() == incomplete([f"node {gone.id} is not available"])


async def test_a_node_that_disconnects_midway_ends_its_part() -> None:
    store = Store(clock=FakeClock())
    node = await add_node(store, "one")
    service = await add_service(store, "web")
    await add_task(store, service, node)
    broker = LogBroker(store, FakeClock())
    connection = FakeConnection()
    broker.connected(node.id, connection)
    async with broker.subscribe(LogSelector(service_ids=(service.id,)), LogOptions()) as sub:
        broker.disconnected(node.id, connection)
        assert await drain(sub) == []
    assert sub.error() == incomplete([f"node {node.id} disconnected unexpectedly"])


async def test_a_node_that_never_answers_is_given_up() -> None:
    clock = FakeClock()
    store = Store(clock=clock)
    quiet = await add_node(store, "quiet")
    service = await add_service(store, "web")
    await add_task(store, service, quiet)
    broker = LogBroker(store, clock)
    broker.connected(quiet.id, FakeConnection())  # connected, and then silent
    async with broker.subscribe(LogSelector(service_ids=(service.id,)), LogOptions()) as sub:
        assert await sub.next() == []  # nothing yet, and not given up yet
        await clock.advance(NODE_SILENCE)
        assert await drain(sub) == []
    assert sub.error() == incomplete([f"node {quiet.id} is not available"])


async def test_following_asks_a_node_that_gets_a_task_later_and_one_that_comes_back() -> None:
    store = Store(clock=FakeClock())
    one, two, three = [await add_node(store, name) for name in ("one", "two", "three")]
    service = await add_service(store, "web", replicas=3)
    await add_task(store, service, one)
    await add_task(store, service, three, slot=3)
    broker = LogBroker(store, FakeClock())
    agents = {node.id: FakeConnection() for node in (one, two)}
    for node_id, connection in agents.items():
        broker.connected(node_id, connection)
    options = LogOptions(follow=True)

    async with broker.subscribe(LogSelector(service_ids=(service.id,)), options) as sub:
        assert [s.follow for s in subscriptions(agents[one.id])] == [True]
        assert subscriptions(agents[two.id]) == []
        # A new task on node two: it is asked for its logs too.
        task = await add_task(store, service, two, slot=2)
        for _ in range(5):
            await asyncio.sleep(0)
        assert [s.id for s in subscriptions(agents[two.id])] == [sub.id]
        # Node three was not connected; when it comes back, it is asked.
        back = FakeConnection()
        broker.connected(three.id, back)
        assert [s.id for s in subscriptions(back)] == [sub.id]
        broker.received(two.id, LogsBatch(id=sub.id, entries=[entry(task.id, "late\n")]))
        assert await sub.next() == [(two.id, [entry(task.id, "late\n")])]
        # Following, a quiet stream is never finished.
        assert await sub.next() == []
    assert sub.error() == incomplete([f"node {three.id} is not available"])


def test_the_api_and_the_dispatcher_share_the_stores_broker() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    assert broker_for(store, clock) is broker_for(store, clock)
    assert broker_for(Store(clock=clock), clock) is not broker_for(store, clock)
