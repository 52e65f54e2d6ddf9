"""The one controller runtime: the loop, own commits, timers, pokes, debounce and the end."""

from __future__ import annotations

import asyncio
from collections import deque

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock
from swarmlet.manager.controller import Controller
from swarmlet.manager.store import Event, Op, Store, Tx
from swarmlet.models import Node, NodeSpec


class Recorder(Controller):
    """Marks every node event; each pass writes a label onto the nodes it was told to."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        super().__init__(store, clock)
        self.started_with: list[str] = []
        self.marked: list[str] = []
        self.passes = 0
        self.to_label: list[str] = []
        self.wake_in: float | None = None

    def start(self) -> None:
        self.started_with = sorted(node.id for node in self._store.all(Node))

    def mark(self, event: Event) -> None:
        self.marked.append(event.obj.id)

    async def act(self) -> None:
        self.passes += 1
        todo, self.to_label = self.to_label, []
        if todo:

            def label(tx: Tx) -> None:
                for node_id in todo:
                    node = tx.get(Node, node_id)
                    tx.update(node.replace(spec=NodeSpec(labels={"seen": "yes"})))

            await self.write(label)

    def timeout(self) -> float | None:
        return self.wake_in


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def started(store: Store, clock: FakeClock) -> tuple[Recorder, asyncio.Task[None]]:
    controller = Recorder(store, clock)
    loop = asyncio.create_task(controller.run())
    await settle()
    return controller, loop


async def test_start_sees_the_snapshot_and_events_after_it_are_marked() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    await store.update(lambda tx: tx.create(Node(id="a")))
    controller, loop = await started(store, clock)
    try:
        assert controller.started_with == ["a"]
        assert controller.passes == 1
        await store.update(lambda tx: tx.create(Node(id="b")))
        await settle()
        assert controller.marked == ["b"]
        assert controller.passes == 2
    finally:
        await cancel_and_wait(loop)


async def test_its_own_commits_do_not_come_back_to_mark() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller, loop = await started(store, clock)
    try:
        await store.update(lambda tx: tx.create(Node(id="a")))
        await settle()
        controller.to_label = ["a"]
        controller.poke()
        await settle()
        assert store.get(Node, "a").spec.labels == {"seen": "yes"}
        assert controller.marked == ["a"]  # the create, not its own label
        await store.update(lambda tx: tx.update(tx.get(Node, "a").replace(spec=NodeSpec())))
        await settle()
        assert controller.marked == ["a", "a"]  # someone else's write to the same node
    finally:
        await cancel_and_wait(loop)


async def test_a_poke_wakes_a_pass_without_an_event() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller, loop = await started(store, clock)
    try:
        assert controller.passes == 1
        await settle()
        assert controller.passes == 1
        controller.poke()
        await settle()
        assert controller.passes == 2
        assert controller.marked == []
    finally:
        await cancel_and_wait(loop)


async def test_a_due_timer_brings_a_pass_on_the_injected_clock() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller = Recorder(store, clock)
    controller.wake_in = 5.0
    loop = asyncio.create_task(controller.run())
    try:
        await settle()
        assert controller.passes == 1
        await clock.advance(4.9)
        await settle()
        assert controller.passes == 1
        controller.wake_in = None
        await clock.advance(0.1)
        await settle()
        assert controller.passes == 2
    finally:
        await cancel_and_wait(loop)


async def test_debounce_gathers_a_burst_into_one_pass() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller = Recorder(store, clock)
    controller.debounce = 1.0
    loop = asyncio.create_task(controller.run())
    try:
        await settle()
        await store.update(lambda tx: tx.create(Node(id="a")))
        await settle()
        await store.update(lambda tx: tx.create(Node(id="b")))
        await settle()
        assert controller.passes == 1  # waiting on the clock
        await clock.advance(1.0)
        await settle()
        assert controller.passes == 2
        assert controller.marked == ["a", "b"]
    finally:
        await cancel_and_wait(loop)


async def test_cancelling_the_loop_closes_its_watch() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    _, loop = await started(store, clock)
    assert len(store._watches) == 1
    await cancel_and_wait(loop)
    assert store._watches == set()


class Unwatched(Recorder):
    """A controller on a timer and pokes only: no snapshot, no watch."""

    follows_store = False


async def test_a_controller_that_follows_no_store_takes_no_watch_and_sees_no_events() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller = Unwatched(store, clock)
    loop = asyncio.create_task(controller.run())
    try:
        await settle()
        assert store._watches == set()
        assert controller.passes == 1
        await store.update(lambda tx: tx.create(Node(id="a")))
        await settle()
        assert controller.passes == 1  # a commit does not wake it
        controller.poke()
        await settle()
        assert controller.passes == 2
        assert controller.marked == []
    finally:
        await cancel_and_wait(loop)


async def test_a_controller_that_follows_no_store_wakes_on_its_timer() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller = Unwatched(store, clock)
    controller.wake_in = 2.0
    loop = asyncio.create_task(controller.run())
    try:
        await settle()
        await clock.advance(1.9)
        await settle()
        assert controller.passes == 1
        controller.wake_in = None
        await clock.advance(0.1)
        await settle()
        assert controller.passes == 2
        await clock.advance(10)
        await settle()
        assert controller.passes == 2  # no timer waits: only a poke wakes it
    finally:
        await cancel_and_wait(loop)


async def test_pokes_during_the_debounce_make_one_pass_on_the_injected_clock() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller = Unwatched(store, clock)
    controller.debounce = 0.5
    loop = asyncio.create_task(controller.run())
    try:
        await settle()
        controller.poke()
        await settle()
        await clock.advance(0.25)
        controller.poke()
        await settle()
        assert controller.passes == 1  # waiting on the clock, not on real time
        await clock.advance(0.25)
        await settle()
        assert controller.passes == 2
        await clock.advance(1)
        await settle()
        assert controller.passes == 2  # both pokes were that one pass's
    finally:
        await cancel_and_wait(loop)


class Shared(Unwatched):
    shares_own_commits = True


async def test_a_controller_that_shares_its_commits_tells_them_to_another() -> None:
    # What follows no store forgets its commits, unless another passes over them (the
    # dispatcher's pusher over the status writer's).
    store, clock = Store(clock=FakeClock()), FakeClock()
    await store.update(lambda tx: tx.create(Node(id="a")))
    shared, alone = Shared(store, clock), Unwatched(store, clock)
    for controller in (shared, alone):
        controller.to_label = ["a"]
        await controller.act()
    assert shared.made(store.revision - 1)
    assert not alone.made(store.revision)
    assert alone._own._pending == deque()


async def test_write_ops_writes_a_large_pass_in_parts_in_order() -> None:
    store, clock = Store(clock=FakeClock()), FakeClock()
    controller = Recorder(store, clock)
    controller.max_ops_per_transaction = 2
    watch = store.watch()
    await controller.write_ops([Op.create(Node(id=f"n{i}")) for i in range(5)])
    events = watch.drain()
    watch.close()
    assert [event.obj.id for event in events] == ["n0", "n1", "n2", "n3", "n4"]
    assert [event.revision for event in events] == [1, 1, 2, 2, 3]
    assert all(controller.made(revision) for revision in (1, 2, 3))
