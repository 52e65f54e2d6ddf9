"""The orchestrator controllers against the in-memory store and a fake clock, with a fake
scheduler and fake agents moving tasks along."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise
from typing import TypeVar

from swarmlet.clock import FakeClock
from swarmlet.errors import VersionConflict
from swarmlet.manager.orchestrator import ReplicatedOrchestrator
from swarmlet.manager.orchestrator.orchestrator import RETRY_DELAY
from swarmlet.manager.orchestrator.plan import Memory, Now, Plan
from swarmlet.manager.orchestrator.replicated import reconcile_replicated
from swarmlet.manager.store import Commit, MemoryBackend, Op, Store, Tx
from swarmlet.models import (
    Cluster,
    ClusterSpec,
    Driver,
    Node,
    NodeAvailability,
    NodeState,
    RestartCondition,
    Service,
    Task,
    TaskState,
    UpdateOrder,
)
from swarmlet.models.cluster import TaskDefaults
from swarmlet.models.service import UpdateState
from tests.manager.orchestrator.builders import (
    FakeCluster,
    restart_policy,
    service_spec,
    update_config,
)


def slots(cluster: FakeCluster, service_id: str) -> list[int]:
    return sorted(t.slot or 0 for t in cluster.current(service_id))


def running(cluster: FakeCluster, service_id: str) -> list[str]:
    return [t.id for t in cluster.current(service_id) if t.state == TaskState.RUNNING]


async def test_three_replicas_make_three_tasks(cluster: FakeCluster):
    for n in ("n1", "n2", "n3"):
        await cluster.add_node(n)
    svc = await cluster.create_service(service_spec("web", replicas=3))
    await cluster.settle()
    tasks = cluster.tasks(svc.id)
    assert [t.slot for t in tasks] == [1, 2, 3]
    assert all(t.state == TaskState.PENDING for t in tasks)
    await cluster.converge()
    assert len(running(cluster, svc.id)) == 3
    assert {t.node_id for t in cluster.tasks(svc.id)} == {"n1", "n2", "n3"}
    assert cluster.service(svc.id).update_status is None


async def test_scale_to_ten_and_back_to_two(cluster: FakeCluster):
    for n in ("n1", "n2"):
        await cluster.add_node(n)
    svc = await cluster.create_service(service_spec(replicas=3))
    await cluster.converge()
    await cluster.update_service(svc.id, service_spec(replicas=10))
    await cluster.converge()
    assert slots(cluster, svc.id) == list(range(1, 11))
    assert len(running(cluster, svc.id)) == 10
    spec_version = cluster.service(svc.id).spec_version
    assert all(t.spec_version == spec_version for t in cluster.tasks(svc.id))

    await cluster.update_service(svc.id, service_spec(replicas=2))
    await cluster.converge()
    tasks = cluster.tasks(svc.id)
    # The removed tasks stopped and the reaper deleted them.
    assert len(tasks) == 2
    assert {t.node_id for t in tasks} == {"n1", "n2"}  # still balanced
    assert all(t.state == TaskState.RUNNING for t in tasks)


async def test_a_failed_task_restarts_after_the_delay_and_stays_in_history(
    cluster: FakeCluster,
):
    await cluster.add_node("n1")
    svc = await cluster.create_service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    await cluster.converge()
    [first] = cluster.tasks(svc.id)
    await cluster.end(first.id, TaskState.FAILED)
    await cluster.converge()
    # The replacement exists at once, prepared (READY) but not started before the delay.
    old, new = sorted(cluster.tasks(svc.id), key=lambda t: t.id != first.id)
    assert old.id == first.id
    assert old.desired_state == TaskState.SHUTDOWN
    assert old.state == TaskState.FAILED
    assert new.slot == 1
    assert (new.desired_state, new.state) == (TaskState.READY, TaskState.READY)

    await cluster.advance(4.9)
    await cluster.converge()
    assert cluster.store.get(Task, new.id).desired_state == TaskState.READY
    await cluster.advance(0.1)
    await cluster.converge()
    assert cluster.store.get(Task, new.id).desired_state == TaskState.RUNNING
    assert running(cluster, svc.id) == [new.id]


async def test_on_failure_leaves_a_clean_exit(cluster: FakeCluster):
    await cluster.add_node("n1")
    policy = restart_policy(RestartCondition.ON_FAILURE, delay=0)
    svc = await cluster.create_service(service_spec(replicas=1, restart=policy))
    await cluster.converge()
    [first] = cluster.tasks(svc.id)
    await cluster.end(first.id, TaskState.COMPLETE)
    await cluster.converge()
    [done] = cluster.tasks(svc.id)
    assert done.desired_state == TaskState.SHUTDOWN
    assert done.state == TaskState.COMPLETE


async def test_max_attempts_limits_restarts(cluster: FakeCluster):
    await cluster.add_node("n1")
    policy = restart_policy(delay=1, max_attempts=2)
    svc = await cluster.create_service(service_spec(replicas=1, restart=policy))
    await cluster.converge()
    for _ in range(3):
        [task] = cluster.current(svc.id)
        await cluster.end(task.id, TaskState.FAILED)
        await cluster.converge()
        await cluster.advance(1)  # the restart delay
        await cluster.converge()
    assert cluster.current(svc.id) == []
    assert len(cluster.tasks(svc.id)) == 3
    await cluster.advance(60)
    await cluster.converge()
    assert cluster.current(svc.id) == []


async def test_a_task_that_fails_while_preparing_is_replaced_only_after_each_delay(
    cluster: FakeCluster,
):
    await cluster.add_node("n1")
    cluster.missing_images.add("ghost:1")  # every task is REJECTED while being prepared
    delay, tick, wanted = 5.0, 0.5, 4
    spec = service_spec(replicas=1, image="ghost:1", restart=restart_policy(delay=delay))
    svc = await cluster.create_service(spec)
    start = cluster.clock.monotonic()
    rejected: dict[str, float] = {}  # task ID -> monotonic time it was seen REJECTED
    for _ in range(200):
        await cluster.converge()
        for t in cluster.tasks(svc.id):
            if t.state == TaskState.REJECTED:
                rejected.setdefault(t.id, cluster.clock.monotonic())
        if len(rejected) >= wanted:
            break
        await cluster.advance(tick)
    assert len(rejected) == wanted
    elapsed = cluster.clock.monotonic() - start
    # Each replacement waited out a full delay: no crash loop faster than the policy allows...
    assert elapsed >= (wanted - 1) * delay
    times = sorted(rejected.values())
    assert all(later - earlier >= delay for earlier, later in pairwise(times))
    # ...and not much slower either: the restarts keep coming.
    assert elapsed <= (wanted - 1) * (delay + tick)


async def test_a_down_node_has_its_tasks_replaced_at_once(cluster: FakeCluster):
    await cluster.add_node("n1")
    await cluster.add_node("n2")
    svc = await cluster.create_service(service_spec(replicas=2))
    await cluster.converge()
    [on_n1] = [t for t in cluster.tasks(svc.id) if t.node_id == "n1"]
    await cluster.set_node("n1", state=NodeState.DOWN)
    await cluster.converge()  # no time passes
    current = cluster.current(svc.id)
    assert [t.slot for t in current] == [1, 2]
    assert {t.node_id for t in current} == {"n2"}
    assert all(t.state == TaskState.RUNNING for t in current)
    assert cluster.store.get(type(on_n1), on_n1.id).desired_state == TaskState.SHUTDOWN

    # The node comes back: its old task stops, nothing moves back.
    await cluster.set_node("n1", state=NodeState.READY)
    await cluster.converge()
    assert {t.node_id for t in cluster.current(svc.id)} == {"n2"}
    assert cluster.store.get(type(on_n1), on_n1.id).state == TaskState.SHUTDOWN


async def test_drain_moves_tasks_and_activating_moves_nothing_back(cluster: FakeCluster):
    await cluster.add_node("n1")
    await cluster.add_node("n2")
    svc = await cluster.create_service(service_spec(replicas=4))
    await cluster.converge()
    await cluster.set_node("n1", availability=NodeAvailability.DRAIN)
    await cluster.converge()
    assert {t.node_id for t in cluster.current(svc.id)} == {"n2"}
    assert len(running(cluster, svc.id)) == 4
    await cluster.set_node("n1", availability=NodeAvailability.ACTIVE)
    await cluster.converge()
    assert {t.node_id for t in cluster.current(svc.id)} == {"n2"}


async def test_global_service_follows_the_nodes(cluster: FakeCluster):
    await cluster.add_node("n1", labels={"zone": "east"})
    await cluster.add_node("n2", labels={"zone": "east"})
    await cluster.add_node("n3", labels={"zone": "west"})
    spec = service_spec("agent", is_global=True, constraints=["node.labels.zone==east"])
    svc = await cluster.create_service(spec)
    await cluster.converge()
    assert sorted(t.node_id or "" for t in cluster.current(svc.id)) == ["n1", "n2"]
    assert len(running(cluster, svc.id)) == 2

    await cluster.set_node("n1", availability=NodeAvailability.DRAIN)
    await cluster.converge()
    assert [t.node_id for t in cluster.current(svc.id)] == ["n2"]
    [stopped] = [t for t in cluster.tasks(svc.id) if t.node_id == "n1"]
    assert stopped.desired_state == TaskState.SHUTDOWN
    assert stopped.state == TaskState.SHUTDOWN

    await cluster.add_node("n4", labels={"zone": "east"})
    await cluster.converge()
    assert sorted(t.node_id or "" for t in cluster.current(svc.id)) == ["n2", "n4"]

    await cluster.set_node("n3", labels={"zone": "east"})
    await cluster.set_node("n2", labels={"zone": "west"})
    await cluster.converge()
    assert sorted(t.node_id or "" for t in cluster.current(svc.id)) == ["n3", "n4"]

    await cluster.set_node("n1", availability=NodeAvailability.ACTIVE)
    await cluster.converge()
    assert sorted(t.node_id or "" for t in cluster.current(svc.id)) == ["n1", "n3", "n4"]
    assert len(running(cluster, svc.id)) == 3


async def test_rolling_update_stop_first_one_by_one(cluster: FakeCluster):
    for n in ("n1", "n2", "n3"):
        await cluster.add_node(n)
    config = update_config(parallelism=1)
    svc = await cluster.create_service(service_spec(replicas=3, update=config))
    await cluster.converge()
    old_ids = {t.id for t in cluster.tasks(svc.id)}

    await cluster.update_service(svc.id, service_spec(replicas=3, image="nginx:2", update=config))
    await cluster.settle()
    # One slot at a time: its old task is told to stop, its new one waits for that.
    status = cluster.service(svc.id).update_status
    assert status is not None
    assert status.state == UpdateState.UPDATING
    new = [t for t in cluster.tasks(svc.id) if t.id not in old_ids]
    assert len(new) == 1
    assert new[0].desired_state == TaskState.READY
    stopping = [t for t in cluster.tasks(svc.id) if t.desired_state == TaskState.SHUTDOWN]
    assert [t.slot for t in stopping] == [new[0].slot]

    # Each round of the fake cluster moves the update on by one step.
    seen_new = 1
    for _ in range(20):
        await cluster.schedule()
        await cluster.agents()
        await cluster.settle()
        new = [t for t in cluster.tasks(svc.id) if t.id not in old_ids]
        assert len(new) - seen_new <= 1
        assert len([t for t in new if t.state != TaskState.RUNNING]) <= 1
        seen_new = len(new)

    await cluster.converge()
    tasks = cluster.tasks(svc.id)
    current = cluster.current(svc.id)
    assert len(current) == 3
    assert all(t.spec.container_spec.image == "nginx:2" for t in current)
    assert all(t.state == TaskState.RUNNING for t in current)
    old = [t for t in tasks if t.id in old_ids]
    assert len(old) == 3
    assert all(t.state == TaskState.SHUTDOWN for t in old)
    status = cluster.service(svc.id).update_status
    assert status is not None
    assert status.state == UpdateState.UPDATING  # it watches for failures for Monitor (5 s)
    await cluster.advance(5)
    status = cluster.service(svc.id).update_status
    assert status is not None
    assert status.state == UpdateState.COMPLETED
    assert status.message == "update completed"


async def test_rolling_update_start_first(cluster: FakeCluster):
    await cluster.add_node("n1")
    config = update_config(parallelism=1, order=UpdateOrder.START_FIRST)
    svc = await cluster.create_service(service_spec(replicas=2, update=config))
    await cluster.converge()
    old_ids = {t.id for t in cluster.tasks(svc.id)}
    await cluster.update_service(svc.id, service_spec(replicas=2, image="nginx:2", update=config))
    await cluster.settle()
    current = cluster.current(svc.id)
    assert len(current) == 3  # the new one starts beside the old one
    await cluster.schedule()
    await cluster.agents()
    await cluster.settle()
    # The new task runs: the old one of its slot is stopped, the next slot begins.
    assert len([t for t in cluster.current(svc.id) if t.id in old_ids]) == 1
    await cluster.converge()
    assert all(t.id not in old_ids for t in cluster.current(svc.id))
    assert len(running(cluster, svc.id)) == 2
    await cluster.advance(5)  # Monitor, after the last batch
    status = cluster.service(svc.id).update_status
    assert status is not None
    assert status.state == UpdateState.COMPLETED


async def test_update_delay_waits_on_the_clock(cluster: FakeCluster):
    await cluster.add_node("n1")
    config = update_config(parallelism=1, delay=30)
    svc = await cluster.create_service(service_spec(replicas=2, update=config))
    await cluster.converge()
    await cluster.update_service(svc.id, service_spec(replicas=2, image="nginx:2", update=config))
    await cluster.converge()
    images = sorted(t.spec.container_spec.image for t in cluster.current(svc.id))
    assert images == ["nginx:1", "nginx:2"]
    await cluster.advance(29)
    await cluster.converge()
    assert sorted(t.spec.container_spec.image for t in cluster.current(svc.id)) == images
    await cluster.advance(1)
    await cluster.converge()
    assert all(t.spec.container_spec.image == "nginx:2" for t in cluster.current(svc.id))
    # The last batch's delay, then Monitor (5 s), and the update is complete.
    await cluster.advance(34)
    assert cluster.service(svc.id).update_status.state == UpdateState.UPDATING  # type: ignore[union-attr]
    await cluster.advance(1)
    assert cluster.service(svc.id).update_status.state == UpdateState.COMPLETED  # type: ignore[union-attr]


async def test_scale_only_change_keeps_the_tasks(cluster: FakeCluster):
    await cluster.add_node("n1")
    svc = await cluster.create_service(service_spec(replicas=2))
    await cluster.converge()
    before = {t.id for t in cluster.tasks(svc.id)}
    updated = await cluster.update_service(svc.id, service_spec(replicas=3))
    await cluster.converge()
    tasks = cluster.tasks(svc.id)
    assert before < {t.id for t in tasks}
    assert len(tasks) == 3
    assert all(t.spec_version == updated.spec_version for t in tasks)
    assert all(t.desired_state == TaskState.RUNNING for t in tasks)
    assert cluster.service(svc.id).update_status is None


async def test_the_reaper_keeps_five_tasks_per_slot(cluster: FakeCluster):
    await cluster.add_node("n1")
    svc = await cluster.create_service(service_spec(replicas=1, restart=restart_policy(delay=0)))
    await cluster.converge()
    for _ in range(8):
        [task] = cluster.current(svc.id)
        await cluster.advance(1)  # distinct creation times
        await cluster.end(task.id, TaskState.FAILED)
        await cluster.converge()
    tasks = cluster.tasks(svc.id)
    assert len(tasks) == 5
    assert len(cluster.current(svc.id)) == 1


async def test_deleting_a_service_deletes_its_tasks_once_stopped(cluster: FakeCluster):
    await cluster.add_node("n1")
    svc = await cluster.create_service(service_spec(replicas=3))
    await cluster.converge()
    await cluster.delete_service(svc.id)
    await cluster.settle()
    assert len(cluster.tasks(svc.id)) == 3  # still running: not yet
    await cluster.converge()
    assert cluster.tasks(svc.id) == []


R = TypeVar("R")


class FlakyStore(Store):
    """Refuses the first two commits that write a task (the pass's, then the service's own),
    as if a stale object were in them."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(MemoryBackend(), clock)
        self.refused = 0

    async def update(self, fn: Callable[[Tx], R]) -> Commit[R]:
        # A dry run on a transaction of its own shows what ``fn`` writes (it may run again).
        tx = Tx(self)
        fn(tx)
        if self.refused < 2 and any(isinstance(op.obj, Task) for op in tx.ops):
            self.refused += 1
            raise VersionConflict("update out of sequence")
        return await super().update(fn)


async def test_a_failed_commit_is_tried_again():
    clock = FakeClock()
    store = FlakyStore(clock)
    orchestrator = ReplicatedOrchestrator(store, clock)
    job = asyncio.create_task(orchestrator.run())
    fake = FakeCluster(store, clock)
    svc = await fake.create_service(service_spec(replicas=2))
    await fake.settle()
    assert store.refused == 2
    assert fake.tasks(svc.id) == []
    await fake.advance(RETRY_DELAY)
    assert len(fake.tasks(svc.id)) == 2
    assert not job.done()
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)


async def test_a_closed_store_ends_the_controllers():
    clock = FakeClock()
    store = Store(MemoryBackend(), clock)
    orchestrator = ReplicatedOrchestrator(store, clock)
    job = asyncio.create_task(orchestrator.run())
    await asyncio.sleep(0)
    store.close()
    await asyncio.wait_for(job, 1)


async def test_a_service_that_cannot_be_reconciled_does_not_stop_the_others(
    cluster: FakeCluster,
):
    await cluster.add_node("n1")
    bad = await cluster.create_service(
        service_spec("bad", is_global=True, constraints=["nonsense"])
    )
    good = await cluster.create_service(service_spec("good", is_global=True))
    await cluster.converge()
    assert cluster.tasks(bad.id) == []
    assert len(running(cluster, good.id)) == 1


async def test_a_new_orchestrator_starts_a_pending_restart_when_it_was_due():
    clock = FakeClock()
    store = Store(MemoryBackend(), clock)
    fake = FakeCluster(store, clock)
    first = asyncio.create_task(ReplicatedOrchestrator(store, clock).run())
    await fake.add_node("n1")
    svc = await fake.create_service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    await fake.converge()
    [failed] = fake.tasks(svc.id)
    await fake.end(failed.id, TaskState.FAILED)
    await fake.converge()
    [ready] = fake.current(svc.id)
    assert ready.desired_state == TaskState.READY

    # The manager restarts before the delay has passed: a fresh controller, no memory.
    await fake.advance(2)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    second = asyncio.create_task(ReplicatedOrchestrator(store, clock).run())
    await fake.converge()
    # The replacement carries its restart's time: it starts when it was due, not later.
    await fake.advance(2.9)
    await fake.converge()
    assert [t.desired_state for t in fake.current(svc.id)] == [TaskState.READY]
    await fake.advance(0.1)
    await fake.converge()
    assert running(fake, svc.id) == [ready.id]
    await fake.advance(60)
    await fake.converge()
    assert [t.id for t in fake.current(svc.id)] == [ready.id]
    assert len(fake.tasks(svc.id)) == 2
    assert not second.done()
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    store.close()


async def test_a_new_orchestrator_restarts_a_rejected_task_the_old_one_had_pending():
    clock = FakeClock()
    store = Store(MemoryBackend(), clock)
    fake = FakeCluster(store, clock)
    first = asyncio.create_task(ReplicatedOrchestrator(store, clock).run())
    await fake.add_node("n1")
    fake.missing_images.add("nginx:1")
    svc = await fake.create_service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    await fake.converge()
    [rejected] = fake.tasks(svc.id)
    assert rejected.state == TaskState.REJECTED
    assert fake.current(svc.id) == []  # a rejected task's slot waits empty

    await fake.advance(2)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    second = asyncio.create_task(ReplicatedOrchestrator(store, clock).run())
    await fake.converge()
    assert fake.current(svc.id) == []
    # Its delay counts from the new controller's start: up to one delay late, never lost.
    await fake.advance(4.9)
    await fake.converge()
    assert len(fake.tasks(svc.id)) == 1
    fake.missing_images.clear()
    await fake.advance(0.1)
    await fake.converge()
    [new] = fake.current(svc.id)
    assert new.id != rejected.id
    assert running(fake, svc.id) == [new.id]
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    store.close()


async def test_a_global_restart_on_a_node_drained_meanwhile_is_shut_down(cluster: FakeCluster):
    await cluster.add_node("n1")
    await cluster.add_node("n2")
    svc = await cluster.create_service(
        service_spec(is_global=True, restart=restart_policy(delay=5))
    )
    await cluster.converge()
    [on_n1] = [t for t in cluster.tasks(svc.id) if t.node_id == "n1"]
    await cluster.end(on_n1.id, TaskState.FAILED)
    await cluster.converge()
    await cluster.set_node("n1", availability=NodeAvailability.DRAIN)
    await cluster.converge()
    await cluster.advance(5)
    await cluster.converge()
    # The waiting replacement went with the drain, before it ever started.
    assert [t.node_id for t in cluster.current(svc.id)] == ["n2"]
    on_n1_now = [t for t in cluster.tasks(svc.id) if t.node_id == "n1"]
    assert all(t.state != TaskState.RUNNING for t in on_n1_now if t.id != on_n1.id)
    await cluster.advance(60)
    await cluster.converge()
    assert [t.node_id for t in cluster.current(svc.id)] == ["n2"]
    # Active again: the normal placement gives the node a task.
    await cluster.set_node("n1", availability=NodeAvailability.ACTIVE)
    await cluster.converge()
    assert sorted(t.node_id or "" for t in cluster.current(svc.id)) == ["n1", "n2"]
    assert len(running(cluster, svc.id)) == 2


async def test_a_global_restart_on_a_node_paused_meanwhile_starts_when_due(
    cluster: FakeCluster,
):
    await cluster.add_node("n1")
    svc = await cluster.create_service(
        service_spec(is_global=True, restart=restart_policy(delay=5))
    )
    await cluster.converge()
    [first] = cluster.tasks(svc.id)
    await cluster.end(first.id, TaskState.FAILED)
    await cluster.converge()
    [ready] = cluster.current(svc.id)
    assert ready.node_id == "n1"
    await cluster.advance(2)
    # A paused node keeps the tasks it has, as in Swarm: the replacement is one of them.
    await cluster.set_node("n1", availability=NodeAvailability.PAUSE)
    await cluster.converge()
    await cluster.advance(3)
    await cluster.converge()
    assert running(cluster, svc.id) == [ready.id]


class CountingOrchestrator(ReplicatedOrchestrator):
    """The replicated orchestrator, counting its passes over each service."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        super().__init__(store, clock)
        self.passes: Counter[str] = Counter()

    def reconcile(
        self,
        service: Service,
        tasks: Iterable[Task],
        nodes: Mapping[str, Node],
        now: Now,
        memory: Memory,
    ) -> Plan:
        self.passes[service.id] += 1
        return reconcile_replicated(service, tasks, nodes, now, memory)


async def test_reports_of_a_task_on_its_way_to_running_cost_no_pass():
    # Agents report every step of every task; none of those steps decides anything, so the
    # orchestrator does not go over the service again for them (only for an end).
    clock = FakeClock()
    store = Store(MemoryBackend(), clock)
    orchestrator = CountingOrchestrator(store, clock)
    job = asyncio.create_task(orchestrator.run())
    fake = FakeCluster(store, clock)
    await fake.add_node("n1")
    svc = await fake.create_service(service_spec(replicas=2, restart=restart_policy(delay=0)))
    await fake.settle()
    await fake.schedule()
    await fake.settle()
    before = orchestrator.passes[svc.id]
    for state in (
        TaskState.ACCEPTED,
        TaskState.PREPARING,
        TaskState.READY,
        TaskState.STARTING,
        TaskState.RUNNING,
    ):
        for task in fake.tasks(svc.id):
            await fake.end(task.id, state)
            await fake.settle()
    assert orchestrator.passes[svc.id] == before
    assert len(running(fake, svc.id)) == 2

    first = fake.tasks(svc.id)[0]
    await fake.end(first.id, TaskState.FAILED)
    await fake.settle()
    assert orchestrator.passes[svc.id] > before
    assert len(fake.current(svc.id)) == 2  # the failed slot has its replacement
    assert store.get(Task, first.id).desired_state == TaskState.SHUTDOWN
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)


async def test_a_task_is_made_with_the_swarms_default_log_driver_unless_its_service_has_one(
    cluster: FakeCluster,
):
    # SwarmKit's NewTask: the service's log driver, else the cluster's TaskDefaults.LogDriver,
    # fixed when the task is made.
    default = Driver(name="json-file", options={"max-size": "1m"})
    spec = ClusterSpec(task_defaults=TaskDefaults(log_driver=default))
    await cluster.store.commit([Op.create(Cluster(id="swarm", spec=spec))])
    await cluster.add_node("n1")
    plain = await cluster.create_service(service_spec("plain", replicas=1))
    own = service_spec("own", replicas=1)
    own = own.replace(
        task_template=own.task_template.replace(log_driver=Driver(name="none", options={}))
    )
    logged = await cluster.create_service(own)
    await cluster.settle()
    [task] = cluster.tasks(plain.id)
    assert task.log_driver == default
    assert "LogDriver" not in task.to_api()  # SwarmKit's own field, not the Engine API's
    [task] = cluster.tasks(logged.id)
    assert task.log_driver is None
    assert task.spec.log_driver == Driver(name="none", options={})
