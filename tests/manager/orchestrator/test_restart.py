"""The restart supervisor's decisions, through the replicated and global reconcilers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from swarmlet.manager.orchestrator import Memory, Plan, reconcile_global, reconcile_replicated
from swarmlet.manager.orchestrator.restart import condition_restarts, counted_restarts
from swarmlet.models import (
    SECOND_NS,
    NodeAvailability,
    NodeState,
    RestartCondition,
    RestartPolicy,
    Service,
    Task,
    TaskState,
)
from tests.manager.orchestrator.builders import (
    START,
    apply,
    at,
    changed,
    current,
    node,
    nodes,
    restart_policy,
    service,
    service_spec,
    task,
)


def crash(svc: Service, state: TaskState = TaskState.FAILED) -> Task:
    return task(svc, 1, node_id="n1", state=state)


def replicated_pass(
    svc: Service, tasks: list[Task], seconds: float, memory: Memory | None = None
) -> tuple[list[Task], Plan]:
    plan = reconcile_replicated(svc, tasks, nodes("n1", "n2"), at(seconds), memory)
    return apply(tasks, plan), plan


@pytest.mark.parametrize(
    ("condition", "state", "restarts"),
    [
        (RestartCondition.ANY, TaskState.COMPLETE, True),
        (RestartCondition.ANY, TaskState.FAILED, True),
        (RestartCondition.ON_FAILURE, TaskState.FAILED, True),
        (RestartCondition.ON_FAILURE, TaskState.REJECTED, True),
        (RestartCondition.ON_FAILURE, TaskState.COMPLETE, False),
        (RestartCondition.NONE, TaskState.FAILED, False),
        (RestartCondition.NONE, TaskState.COMPLETE, False),
    ],
)
def test_condition(condition, state, restarts):
    assert condition_restarts(RestartPolicy(condition=condition), state) is restarts


def test_a_failed_task_is_replaced_at_once_and_started_after_the_delay():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    failed = crash(svc)
    tasks, plan = replicated_pass(svc, [failed], 0)
    old = next(t for t in tasks if t.id == failed.id)
    assert old.desired_state == TaskState.SHUTDOWN
    # The replacement exists at once, for an agent to prepare: `service ps` shows it Ready.
    [new] = plan.created
    assert new.slot == 1
    assert new.desired_state == TaskState.READY
    assert new.restart_history == (START,)
    assert plan.memory.restart_at == {}
    assert plan.wake_at == 5

    tasks, plan = replicated_pass(svc, tasks, 3, plan.memory)
    assert plan.ops() == []
    assert plan.wake_at == 5

    tasks, plan = replicated_pass(svc, tasks, 5, plan.memory)
    assert plan.created == []
    [started] = plan.updated
    assert started.id == new.id
    assert started.desired_state == TaskState.RUNNING
    assert plan.wake_at is None
    assert [t.id for t in current(tasks)] == [new.id]


def test_a_rejected_task_is_replaced_only_once_the_delay_has_passed():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    rejected = crash(svc, TaskState.REJECTED)
    tasks, plan = replicated_pass(svc, [rejected], 0)
    # The slot waits empty: a replacement prepared at once would be rejected at once.
    assert plan.created == []
    assert plan.memory.restart_at == {1: 5}
    assert plan.wake_at == 5
    tasks, plan = replicated_pass(svc, tasks, 4.9, plan.memory)
    assert plan.ops() == []
    tasks, plan = replicated_pass(svc, tasks, 5, plan.memory)
    [new] = plan.created
    assert new.desired_state == TaskState.RUNNING
    assert new.restart_history == (START,)
    assert plan.memory.restart_at == {}
    assert plan.memory.restart_histories == {}


def test_the_default_policy_restarts_any_exit_after_five_seconds():
    svc = service(service_spec(replicas=1))
    tasks, plan = replicated_pass(svc, [crash(svc, TaskState.COMPLETE)], 0)
    [new] = plan.created
    assert new.desired_state == TaskState.READY
    assert plan.wake_at == 5
    tasks, plan = replicated_pass(svc, tasks, 4.9, plan.memory)
    assert plan.ops() == []
    _, plan = replicated_pass(svc, tasks, 5, plan.memory)
    [started] = plan.updated
    assert started.desired_state == TaskState.RUNNING


def test_a_zero_delay_starts_the_replacement_in_the_same_pass():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=0)))
    _, plan = replicated_pass(svc, [crash(svc)], 0)
    [new] = plan.created
    assert new.desired_state == TaskState.RUNNING
    assert plan.memory.restart_at == {}
    assert plan.wake_at is None


def test_condition_none_leaves_the_slot_stopped():
    svc = service(service_spec(replicas=1, restart=restart_policy(RestartCondition.NONE)))
    tasks, plan = replicated_pass(svc, [crash(svc)], 0)
    assert plan.created == []
    [old] = tasks
    assert old.desired_state == TaskState.SHUTDOWN
    _, plan = replicated_pass(svc, tasks, 10, plan.memory)
    assert plan.ops() == []


def test_on_failure_does_not_restart_a_clean_exit():
    policy = restart_policy(RestartCondition.ON_FAILURE)
    svc = service(service_spec(replicas=2, restart=policy))
    done = task(svc, 1, node_id="n1", state=TaskState.COMPLETE)
    failed = task(svc, 2, node_id="n1", state=TaskState.FAILED)
    _, plan = replicated_pass(svc, [done, failed], 0)
    assert [t.slot for t in plan.created] == [2]  # only the failed slot
    assert {t.id for t in plan.updated} == {done.id, failed.id}


def fails(t: Task) -> Task:
    """The task, run by an agent on n1, failed."""
    return t.replace(node_id="n1", status=t.status.replace(state=TaskState.FAILED))


def test_max_attempts_stops_restarting_the_slot():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=0, max_attempts=2)))
    tasks: list[Task] = [crash(svc)]
    memory = None
    for attempt in range(3):
        tasks, plan = replicated_pass(svc, tasks, attempt, memory)
        memory = plan.memory
        if attempt < 2:
            [new] = plan.created
            assert len(new.restart_history or ()) == attempt + 1
            tasks = [fails(t) if t.id == new.id else t for t in tasks]
        else:
            assert plan.created == []
    assert current(tasks) == []
    assert len(tasks) == 3


def test_max_attempts_counts_only_within_the_window():
    policy = restart_policy(delay=0, max_attempts=1, window=60)
    history = (START, START + timedelta(seconds=50))
    assert counted_restarts(policy, history, START + timedelta(seconds=100)) == history[1:]
    assert counted_restarts(policy.replace(window=0), history, START) == history
    svc = service(service_spec(replicas=1, restart=policy))
    restarted = crash(svc).replace(restart_history=(START,))
    _, plan = replicated_pass(svc, [restarted], 30)
    assert plan.created == []
    _, plan = replicated_pass(svc, [restarted], 61)
    [new] = plan.created
    # The restart that no longer counts is dropped from the history.
    assert new.restart_history == (START + timedelta(seconds=61),)


def test_a_new_spec_forgets_the_restart_history():
    policy = restart_policy(max_attempts=1)
    old = service(service_spec(replicas=1, restart=policy))
    restarted = crash(old).replace(restart_history=(START,))
    svc = changed(old, service_spec(replicas=1, image="nginx:2", restart=policy))
    _, plan = replicated_pass(svc, [restarted], 1)
    [new] = plan.created  # the old spec's restart does not count
    assert new.restart_history == (START + timedelta(seconds=1),)


def test_scaling_down_while_a_restart_is_pending_does_not_recreate_the_removed_slot():
    svc = service(service_spec(replicas=2, restart=restart_policy(delay=5)))
    ok = task(svc, 1, node_id="n1")
    failed = task(svc, 2, node_id="n2", state=TaskState.FAILED)
    tasks, plan = replicated_pass(svc, [ok, failed], 0)
    [waiting] = plan.created
    assert waiting.slot == 2

    # Scaled to one replica before the delay has passed: the waiting slot is the one to go.
    smaller = changed(svc, service_spec(replicas=1, restart=restart_policy(delay=5)))
    tasks, plan = replicated_pass(smaller, tasks, 1, plan.memory)
    assert plan.created == []
    removed = {t.id for t in plan.updated if t.desired_state == TaskState.REMOVE}
    assert removed == {failed.id, waiting.id}
    assert plan.wake_at is None

    # Once the delay would have passed (and later), nothing comes back in slot 2.
    for seconds in (5, 60):
        tasks, plan = replicated_pass(smaller, tasks, seconds, plan.memory)
        assert plan.ops() == []
    assert [(t.slot, t.id) for t in current(tasks)] == [(1, ok.id)]


def test_a_waiting_task_starts_only_once_the_old_one_stopped():
    svc = service(service_spec(replicas=1))
    old = task(svc, 1, node_id="n1", desired=TaskState.SHUTDOWN)  # still running
    new = task(svc, 1, state=TaskState.PENDING, desired=TaskState.READY)
    _, plan = replicated_pass(svc, [old, new], 0)
    assert plan.ops() == []
    assert plan.wake_at is None  # the old task's end is an event, not a timer
    stopped = old.replace(status=old.status.replace(state=TaskState.SHUTDOWN))
    _, plan = replicated_pass(svc, [stopped, new], 0)
    [started] = plan.updated
    assert started.desired_state == TaskState.RUNNING


def test_a_waiting_task_does_not_wait_for_a_task_on_a_down_node():
    svc = service(service_spec(replicas=1))
    old = task(svc, 1, node_id="n1", desired=TaskState.SHUTDOWN)
    new = task(svc, 1, state=TaskState.PENDING, desired=TaskState.READY)
    cluster = {"n1": node("n1", state=NodeState.DOWN), "n2": node("n2")}
    plan = reconcile_replicated(svc, [old, new], cluster, at(0))
    [started] = plan.updated
    assert started.id == new.id
    assert started.desired_state == TaskState.RUNNING


def test_a_global_task_restarts_on_its_node():
    svc = service(service_spec(is_global=True))
    failed = task(svc, node_id="n1", state=TaskState.FAILED)
    ok = task(svc, node_id="n2")
    plan = reconcile_global(svc, [failed, ok], nodes("n1", "n2"), at(0))
    [new] = plan.created
    assert new.node_id == "n1"
    assert new.name == "web.n1"
    assert new.desired_state == TaskState.READY
    [old] = plan.updated
    assert old.id == failed.id
    assert old.desired_state == TaskState.SHUTDOWN
    assert plan.wake_at == 5
    tasks = apply([failed, ok], plan)
    plan = reconcile_global(svc, tasks, nodes("n1", "n2"), at(4.9), plan.memory)
    assert plan.ops() == []
    assert plan.wake_at == 5
    plan = reconcile_global(svc, tasks, nodes("n1", "n2"), at(5), plan.memory)
    [started] = plan.updated
    assert started.id == new.id
    assert started.desired_state == TaskState.RUNNING
    assert plan.wake_at is None


def test_a_global_task_is_not_restarted_on_a_node_that_takes_no_tasks():
    svc = service(service_spec(is_global=True))
    failed = task(svc, node_id="n1", state=TaskState.FAILED)
    cluster = {"n1": node("n1", availability=NodeAvailability.PAUSE)}
    plan = reconcile_global(svc, [failed], cluster, at(0))
    assert plan.created == []
    [old] = plan.updated
    assert old.desired_state == TaskState.SHUTDOWN


def test_global_condition_none_leaves_the_node_stopped():
    svc = service(service_spec(is_global=True, restart=restart_policy(RestartCondition.NONE)))
    failed = task(svc, node_id="n1", state=TaskState.COMPLETE)
    plan = reconcile_global(svc, [failed], nodes("n1"), at(0))
    assert plan.created == []
    after = apply([failed], plan)
    assert reconcile_global(svc, after, nodes("n1"), at(9), plan.memory).ops() == []


def test_delay_is_read_in_nanoseconds():
    assert restart_policy(delay=1.5).delay == int(1.5 * SECOND_NS)


# A new leader starts with no memory: the restarts the old one had pending are scheduled again.


def test_a_waiting_replacement_keeps_its_due_time_when_memory_is_lost():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    tasks, plan = replicated_pass(svc, [crash(svc)], 0)
    [new] = plan.created
    # A new leader at 2 s: the replacement carries its restart's time, still due at 5.
    tasks, plan = replicated_pass(svc, tasks, 2, Memory())
    assert plan.ops() == []
    assert plan.wake_at == 5
    tasks, plan = replicated_pass(svc, tasks, 5, plan.memory)
    [started] = plan.updated
    assert started.id == new.id
    assert started.desired_state == TaskState.RUNNING


def test_a_rejected_tasks_restart_pending_when_memory_is_lost_is_scheduled_again():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    tasks, plan = replicated_pass(svc, [crash(svc, TaskState.REJECTED)], 0)
    assert plan.memory.restart_at == {1: 5}

    # A new leader at 2 s: its delay counts from now, so the restart is due at 7, not 5.
    tasks, plan = replicated_pass(svc, tasks, 2, Memory())
    assert plan.ops() == []
    assert plan.memory.restart_at == {1: 7}
    assert plan.wake_at == 7
    tasks, plan = replicated_pass(svc, tasks, 6.9, plan.memory)
    assert plan.ops() == []

    tasks, plan = replicated_pass(svc, tasks, 7, plan.memory)
    [new] = plan.created
    assert new.slot == 1
    assert new.desired_state == TaskState.RUNNING
    assert plan.memory.restart_at == {}
    assert [t.id for t in current(tasks)] == [new.id]


def test_intact_memory_neither_moves_nor_repeats_a_pending_restart():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=5)))
    tasks, plan = replicated_pass(svc, [crash(svc, TaskState.REJECTED)], 0)
    tasks, plan = replicated_pass(svc, tasks, 2, plan.memory)
    assert plan.memory.restart_at == {1: 5}
    tasks, plan = replicated_pass(svc, tasks, 5, plan.memory)
    assert len(plan.created) == 1
    tasks, plan = replicated_pass(svc, tasks, 20, plan.memory)
    assert plan.ops() == []
    assert len(current(tasks)) == 1


@pytest.mark.parametrize(
    ("condition", "state"),
    [
        (RestartCondition.NONE, TaskState.FAILED),
        (RestartCondition.ON_FAILURE, TaskState.COMPLETE),
    ],
)
def test_a_slot_stopped_by_the_condition_stays_stopped_when_memory_is_lost(condition, state):
    svc = service(service_spec(replicas=1, restart=restart_policy(condition)))
    tasks, plan = replicated_pass(svc, [crash(svc, state)], 0)
    assert current(tasks) == []
    _, plan = replicated_pass(svc, tasks, 10, Memory())
    assert plan.ops() == []
    assert plan.memory.restart_at == {}
    assert plan.wake_at is None


def test_a_slot_stopped_by_max_attempts_stays_stopped_after_its_window():
    policy = restart_policy(delay=1, max_attempts=1, window=10)
    svc = service(service_spec(replicas=1, restart=policy))
    tasks, plan = replicated_pass(svc, [crash(svc)], 0)
    [again] = plan.created
    tasks, plan = replicated_pass(svc, tasks, 1, plan.memory)
    tasks = [fails(t) if t.id == again.id else t for t in tasks]
    tasks, plan = replicated_pass(svc, tasks, 2, plan.memory)
    assert plan.created == []
    assert current(tasks) == []
    # The restart at 0 s no longer counts once the window has passed, but the decision
    # stands, for this leader and for a new one.
    _, plan = replicated_pass(svc, tasks, 60, plan.memory)
    assert plan.ops() == []
    _, plan = replicated_pass(svc, tasks, 60, Memory())
    assert plan.ops() == []


def test_max_attempts_survive_a_new_leader():
    svc = service(service_spec(replicas=1, restart=restart_policy(delay=5, max_attempts=1)))
    tasks, plan = replicated_pass(svc, [crash(svc)], 0)
    [again] = plan.created
    tasks, plan = replicated_pass(svc, tasks, 5, plan.memory)
    tasks = [fails(t) if t.id == again.id else t for t in tasks]
    # A new leader sees the failure: the task carries the one restart it was.
    tasks, plan = replicated_pass(svc, tasks, 7, Memory())
    assert plan.created == []
    assert plan.memory.restart_at == {}
    assert current(tasks) == []


def test_the_newest_task_of_the_slot_decides_when_memory_is_lost():
    svc = service(service_spec(replicas=1, restart=restart_policy(RestartCondition.ON_FAILURE)))
    failed = task(svc, 1, node_id="n1", state=TaskState.REJECTED, desired=TaskState.SHUTDOWN)
    done = task(svc, 1, node_id="n1", state=TaskState.COMPLETE, desired=TaskState.SHUTDOWN)
    # Created later, the clean exit is the slot's last word: it stays stopped.
    later = done.replace(created_at=START + timedelta(seconds=1))
    _, plan = replicated_pass(svc, [later, failed], 10, Memory())
    assert plan.ops() == []
    assert plan.memory.restart_at == {}
    # The other way round, the failure is the newest and is restarted.
    newer = failed.replace(created_at=START + timedelta(seconds=1))
    _, plan = replicated_pass(svc, [done, newer], 10, Memory())
    assert plan.memory.restart_at == {1: 15}


def test_a_global_restart_pending_when_memory_is_lost_waits_for_a_delay():
    svc = service(service_spec(is_global=True))
    failed = task(svc, node_id="n1", state=TaskState.REJECTED)
    plan = reconcile_global(svc, [failed], nodes("n1"), at(0))
    tasks = apply([failed], plan)
    assert plan.memory.restart_at == {"n1": 5}
    # A new leader at 2 s does not place a task on the node at once.
    plan = reconcile_global(svc, tasks, nodes("n1"), at(2), Memory())
    assert plan.ops() == []
    assert plan.memory.restart_at == {"n1": 7}
    assert plan.wake_at == 7
    plan = reconcile_global(svc, tasks, nodes("n1"), at(7), plan.memory)
    [new] = plan.created
    assert new.node_id == "n1"
    assert new.desired_state == TaskState.RUNNING


def test_a_global_restart_lost_with_memory_is_not_scheduled_on_a_paused_node():
    svc = service(service_spec(is_global=True))
    failed = task(svc, node_id="n1", state=TaskState.FAILED, desired=TaskState.SHUTDOWN)
    paused = {"n1": node("n1", availability=NodeAvailability.PAUSE)}
    plan = reconcile_global(svc, [failed], paused, at(2), Memory())
    assert plan.ops() == []
    assert plan.memory.restart_at == {}
    # Once active again, the node gets its task from the normal placement.
    plan = reconcile_global(svc, [failed], nodes("n1"), at(3), plan.memory)
    [new] = plan.created
    assert new.node_id == "n1"


# A global restart lands only on a node that may still take tasks (a rejected task's, made
# once the delay has passed; a waiting READY replacement is placement's like any task).

NOT_TAKING_TASKS = {
    "drained": node("n1", availability=NodeAvailability.DRAIN),
    "paused": node("n1", availability=NodeAvailability.PAUSE),
    "down": node("n1", state=NodeState.DOWN),
    "unmatched": node("n1", labels={"zone": "west"}),
}


@pytest.mark.parametrize("change", sorted(NOT_TAKING_TASKS))
def test_a_global_restart_is_dropped_when_its_node_stops_taking_tasks(change):
    spec = service_spec(is_global=True, constraints=["node.labels.zone==east"])
    svc = service(spec)
    east = {"n1": node("n1", labels={"zone": "east"})}
    failed = task(svc, node_id="n1", state=TaskState.REJECTED)
    plan = reconcile_global(svc, [failed], east, at(0))
    tasks = apply([failed], plan)
    assert plan.memory.restart_at == {"n1": 5}

    # The node changes during the delay; once the delay has passed, nothing lands on it.
    changed_node = {"n1": NOT_TAKING_TASKS[change]}
    plan = reconcile_global(svc, tasks, changed_node, at(2), plan.memory)
    assert plan.created == []
    plan = reconcile_global(svc, tasks, changed_node, at(5), plan.memory)
    assert plan.created == []
    assert plan.memory.restart_at == {}
    assert plan.wake_at is None

    # When it takes tasks again, the normal placement gives it one.
    plan = reconcile_global(svc, tasks, east, at(6), plan.memory)
    [new] = plan.created
    assert new.node_id == "n1"
    assert new.desired_state == TaskState.RUNNING


def test_a_node_paused_for_less_than_the_delay_gets_its_restart_when_due():
    svc = service(service_spec(is_global=True))
    failed = task(svc, node_id="n1", state=TaskState.REJECTED)
    plan = reconcile_global(svc, [failed], nodes("n1"), at(0))
    tasks = apply([failed], plan)
    paused = {"n1": node("n1", availability=NodeAvailability.PAUSE)}
    plan = reconcile_global(svc, tasks, paused, at(1), plan.memory)
    assert plan.ops() == []
    # Active again before the delay has passed: the restart still waits for it.
    plan = reconcile_global(svc, tasks, nodes("n1"), at(2), plan.memory)
    assert plan.ops() == []
    assert plan.wake_at == 5
    plan = reconcile_global(svc, tasks, nodes("n1"), at(5), plan.memory)
    [new] = plan.created
    assert new.node_id == "n1"
