"""The rolling update's decisions, through the replicated and global reconcilers."""

from __future__ import annotations

from swarmlet.manager.orchestrator import Memory, Plan, reconcile_global, reconcile_replicated
from swarmlet.models import Service, Task, TaskState, UpdateOrder
from swarmlet.models.service import UpdateState
from tests.manager.orchestrator.builders import (
    apply,
    at,
    changed,
    current,
    nodes,
    service,
    service_spec,
    task,
    update_config,
)

NODES = nodes("n1", "n2", "n3")


def running_service(replicas: int = 3, **spec: object) -> tuple[Service, list[Task]]:
    svc = service(service_spec(replicas=replicas, **spec))  # type: ignore[arg-type]
    tasks = [task(svc, slot, node_id=f"n{slot}") for slot in range(1, replicas + 1)]
    return svc, tasks


def step(
    svc: Service, tasks: list[Task], seconds: float, memory: Memory
) -> tuple[list[Task], Plan]:
    plan = reconcile_replicated(svc, tasks, NODES, at(seconds), memory)
    return apply(tasks, plan), plan


def agents(tasks: list[Task]) -> list[Task]:
    """Every task reaches its desired state (placed on the node of its slot)."""
    result = []
    for t in tasks:
        target = t.desired_state if t.desired_state <= TaskState.RUNNING else TaskState.SHUTDOWN
        node_id = t.node_id or f"n{t.slot}"
        result.append(t.replace(node_id=node_id, status=t.status.replace(state=target)))
    return result


def fresh(svc: Service, tasks: list[Task]) -> list[Task]:
    return [t for t in current(tasks) if t.spec == svc.spec.task_template]


def test_stop_first_with_parallelism_one_replaces_one_task_at_a_time():
    old, tasks = running_service(update=update_config(parallelism=1))
    svc = changed(old, service_spec(image="nginx:2", update=update_config(parallelism=1)))
    memory = Memory()

    tasks, plan = step(svc, tasks, 0, memory)
    memory = plan.memory
    [new] = plan.created
    assert new.desired_state == TaskState.READY
    [stopped] = [t for t in tasks if t.desired_state == TaskState.SHUTDOWN]
    assert stopped.slot == new.slot == 1
    assert plan.updated_service is not None
    status = plan.updated_service.update_status
    assert status is not None
    assert status.state == UpdateState.UPDATING
    assert status.message == "update in progress"
    assert status.started_at == "2026-01-01T00:00:00Z"
    svc = plan.updated_service

    # Nothing more while the old task still runs.
    tasks, plan = step(svc, tasks, 1, memory)
    assert plan.ops() == []

    # The old one stops: the new one may start; the next slot waits until it runs.
    tasks = agents(tasks)
    tasks, plan = step(svc, tasks, 2, plan.memory)
    assert [t.id for t in plan.updated] == [new.id]
    assert plan.created == []
    tasks = agents(tasks)
    tasks, plan = step(svc, tasks, 3, plan.memory)
    [second] = plan.created
    assert second.slot == 2

    for seconds in range(4, 20):
        tasks = agents(tasks)
        tasks, plan = step(svc, tasks, seconds, plan.memory)
        if plan.updated_service is not None:
            svc = plan.updated_service
    assert len(fresh(svc, tasks)) == 3
    assert len(current(tasks)) == 3
    assert all(t.state == TaskState.SHUTDOWN for t in tasks if t not in current(tasks))
    assert svc.update_status is not None
    assert svc.update_status.state == UpdateState.COMPLETED
    assert svc.update_status.message == "update completed"
    assert svc.update_status.completed_at is not None


def test_parallelism_zero_replaces_everything_at_once():
    old, tasks = running_service(update=update_config(parallelism=0))
    svc = changed(old, service_spec(image="nginx:2", update=update_config(parallelism=0)))
    _, plan = step(svc, tasks, 0, Memory())
    assert sorted(t.slot or 0 for t in plan.created) == [1, 2, 3]


def test_the_delay_separates_batches():
    config = update_config(parallelism=1, delay=10)
    old, tasks = running_service(replicas=2, update=config)
    svc = changed(old, service_spec(replicas=2, image="nginx:2", update=config))
    tasks, plan = step(svc, tasks, 0, Memory())
    svc = plan.updated_service or svc
    tasks = agents(tasks)
    tasks, plan = step(svc, tasks, 1, plan.memory)  # the new task may start
    tasks = agents(tasks)
    tasks, plan = step(svc, tasks, 2, plan.memory)  # it runs: the batch is done
    assert plan.created == []
    assert plan.wake_at == 12
    tasks, plan = step(svc, tasks, 11, plan.memory)
    assert plan.created == []
    tasks, plan = step(svc, tasks, 12, plan.memory)
    [second] = plan.created
    assert second.slot == 2


def test_start_first_starts_the_new_task_before_stopping_the_old():
    config = update_config(order=UpdateOrder.START_FIRST)
    old, tasks = running_service(replicas=1, update=config)
    svc = changed(old, service_spec(replicas=1, image="nginx:2", update=config))
    tasks, plan = step(svc, tasks, 0, Memory())
    [new] = plan.created
    assert new.desired_state == TaskState.RUNNING
    assert len(current(tasks)) == 2  # both, for now
    tasks = agents(tasks)
    tasks, plan = step(svc, tasks, 1, plan.memory)
    [stopped] = plan.updated
    assert stopped.id != new.id
    assert stopped.desired_state == TaskState.SHUTDOWN
    assert [t.id for t in current(tasks)] == [new.id]


def test_a_scale_only_change_keeps_the_tasks_and_bumps_their_spec_version():
    old, tasks = running_service(replicas=2)
    svc = changed(old, service_spec(replicas=3))
    _, plan = step(svc, tasks, 0, Memory())
    assert [t.slot for t in plan.created] == [3]
    assert {t.id for t in plan.updated} == {t.id for t in tasks}
    assert all(t.spec_version == svc.spec_version for t in plan.updated)
    assert all(t.desired_state == TaskState.RUNNING for t in plan.updated)
    assert plan.updated_service is None  # no update to report


def test_a_new_service_never_gets_an_update_status():
    svc = service(service_spec(replicas=2))
    plan = reconcile_replicated(svc, [], NODES, at(0))
    assert plan.updated_service is None


def test_a_global_service_rolls_node_by_node():
    config = update_config(parallelism=1)
    old = service(service_spec(is_global=True, update=config))
    tasks = [task(old, node_id=n) for n in ("n1", "n2")]
    svc = changed(old, service_spec(is_global=True, image="nginx:2", update=config))
    plan = reconcile_global(svc, tasks, nodes("n1", "n2"), at(0))
    [new] = plan.created
    assert new.node_id == "n1"
    assert new.desired_state == TaskState.READY
    assert [t.node_id for t in plan.updated if t.desired_state == TaskState.SHUTDOWN] == ["n1"]
