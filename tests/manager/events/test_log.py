"""SwarmEvents: the store's watch as swarm events, kept for `--since` and given to subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.events import EventMessage, Subscription, SwarmEvents, unix_nano
from swarmlet.manager.events import log as events_log
from swarmlet.manager.store import Op, Store
from swarmlet.models import (
    ContainerSpec,
    Network,
    Node,
    NodeAvailability,
    NodeDescription,
    ReplicatedMode,
    Secret,
    SecretSpec,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
)


def service(name: str = "web", replicas: int = 1) -> Service:
    spec = ServiceSpec(
        name=name,
        task_template=TaskSpec(container_spec=ContainerSpec(image="busybox")),
        mode=ServiceMode(replicated=ReplicatedMode(replicas=replicas)),
    )
    return Service(id=f"id-{name}", spec=spec)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Store:
    return Store(clock=clock)


@pytest.fixture
async def events(store: Store, clock: FakeClock) -> AsyncIterator[SwarmEvents]:
    events = SwarmEvents(store, clock, history=4)
    running = asyncio.create_task(events.run(), name="swarm-events")
    await asyncio.sleep(0)  # its snapshot is taken
    yield events
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def received(subscription: Subscription, count: int) -> list[EventMessage]:
    return [await asyncio.wait_for(subscription.next(), 5) for _ in range(count)]


def summary(events: list[EventMessage]) -> list[tuple[str, str, str, dict[str, str]]]:
    return [(e.type, e.action, e.actor_id, dict(e.attributes)) for e in events]


async def test_a_service_is_created_scaled_and_removed(store, events, clock):
    with events.subscribe() as subscription:
        created = (await store.commit([Op.create(service(replicas=1))]))[0]
        assert isinstance(created, Service)
        await clock.advance(2)
        spec = created.spec.replace(mode=ServiceMode(replicated=ReplicatedMode(replicas=3)))
        scaled = (await store.commit([Op.update(created.replace(spec=spec))]))[0]
        await clock.advance(3)
        await store.commit([Op.delete(scaled)])
        got = await received(subscription, 3)
    assert summary(got) == [
        ("service", "create", "id-web", {"name": "web"}),
        ("service", "update", "id-web", {"name": "web", "replicas.old": "1", "replicas.new": "3"}),
        ("service", "remove", "id-web", {"name": "web"}),
    ]
    assert created.created_at is not None
    assert scaled.updated_at is not None
    assert [e.time_nano for e in got] == [
        unix_nano(created.created_at),
        unix_nano(scaled.updated_at),
        unix_nano(clock.now()),
    ]


async def test_objects_present_at_start_are_compared_with(store, clock):
    # A node the store held before the log ran: its first update still says what changed.
    node = Node(id="n1", description=NodeDescription(hostname="node1"))
    written = (await store.commit([Op.create(node)]))[0]
    assert isinstance(written, Node)
    events = SwarmEvents(store, clock)
    running = asyncio.create_task(events.run())
    await asyncio.sleep(0)
    try:
        with events.subscribe() as subscription:
            drained = written.spec.replace(availability=NodeAvailability.DRAIN)
            await store.commit([Op.update(written.replace(spec=drained))])
            (event,) = await received(subscription, 1)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert dict(event.attributes) == {
        "name": "node1",
        "availability.old": "active",
        "availability.new": "drain",
    }


async def test_tasks_make_no_events(store, events):
    with events.subscribe() as subscription:
        task = Task.model_validate({"ID": "t1", "ServiceID": "id-web", "Spec": {}})
        await store.commit([Op.create(task)])
        await store.commit([Op.create(Secret(id="s1", spec=SecretSpec(name="pw")))])
        (event,) = await received(subscription, 1)
    assert (event.type, event.actor_id) == ("secret", "s1")


async def test_the_history_keeps_the_last_events(store, events):
    with events.subscribe() as subscription:
        for number in range(6):
            await store.commit([Op.create(Network(id=f"net{number}", name=f"net{number}"))])
        await received(subscription, 6)
    with events.subscribe() as later:
        assert [e.actor_id for e in later.past] == ["net2", "net3", "net4", "net5"]


async def test_a_closed_subscription_gets_nothing_more(store, events):
    with events.subscribe() as closed:
        pass
    assert closed not in events._subscribers
    with events.subscribe() as watching:
        await store.commit([Op.create(Network(id="n", name="n"))])
        await received(watching, 1)
    # Delivered to every subscriber at once: the closed one was not among them.
    assert closed._queue.empty()


async def test_a_subscriber_that_does_not_keep_up_misses_events_not_memory(
    store, events, monkeypatch
):
    monkeypatch.setattr(events_log, "QUEUE", 2)
    with events.subscribe() as slow, events.subscribe() as keeping_up:
        for number in range(4):
            await store.commit([Op.create(Network(id=f"net{number}", name=f"net{number}"))])
            await received(keeping_up, 1)
        assert [e.actor_id for e in await received(slow, 2)] == ["net0", "net1"]
        assert slow.missed == 2
