"""The job orchestrators' pure decisions (replicated and global jobs), on plain objects."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmlet.manager.allocator.decide import is_released, waits_for_addresses
from swarmlet.manager.orchestrator import Memory, reap
from swarmlet.manager.orchestrator.jobs import reconcile_global_job, reconcile_replicated_job
from swarmlet.manager.scheduler.scheduler import waits_for_node
from swarmlet.models import (
    ContainerSpec,
    Node,
    NodeAvailability,
    NodeState,
    Placement,
    RestartCondition,
    RestartPolicy,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)
from swarmlet.models.service import GlobalJob, JobStatus, ReplicatedJob
from tests.manager.orchestrator.builders import START, apply, at, node, nodes, restart_policy

NODES = nodes("n1", "n2", "n3")


def job(
    *,
    total: int = 10,
    concurrent: int = 3,
    is_global: bool = False,
    restart: RestartPolicy | None = None,
    constraints: tuple[str, ...] = (),
    iteration: int = 0,
) -> Service:
    mode = (
        ServiceMode(global_job=GlobalJob())
        if is_global
        else ServiceMode(
            replicated_job=ReplicatedJob(max_concurrent=concurrent, total_completions=total)
        )
    )
    template = TaskSpec(
        container_spec=ContainerSpec(image="busybox"),
        restart_policy=restart,
        placement=Placement(constraints=list(constraints)) if constraints else None,
    )
    return Service(
        id="job1",
        spec=ServiceSpec(name="job", task_template=template, mode=mode),
        spec_version=Version(index=1),
        job_status=JobStatus(job_iteration=Version(index=iteration), last_execution=START),
    )


def job_task(
    svc: Service,
    slot: int | None = None,
    *,
    node_id: str | None = "n1",
    state: TaskState = TaskState.RUNNING,
    desired: TaskState = TaskState.COMPLETE,
    iteration: int = 0,
    created: float = 0.0,
) -> Task:
    return Task(
        id=f"t{slot}-{node_id}-{iteration}-{created}-{state}",
        service_id=svc.id,
        service_name=svc.spec.name,
        slot=slot,
        node_id=node_id,
        spec=svc.spec.task_template,
        spec_version=svc.spec_version,
        status=TaskStatus(state=state, timestamp=START + timedelta(seconds=created)),
        desired_state=desired,
        created_at=START + timedelta(seconds=created),
        job_iteration=Version(index=iteration),
    )


def active(tasks: list[Task]) -> list[Task]:
    """Tasks meant to complete that have not yet."""
    return [
        t for t in tasks if t.desired_state <= TaskState.COMPLETE and t.state != TaskState.COMPLETE
    ]


def ended(t: Task, state: TaskState, seconds: float = 0.0) -> Task:
    return t.replace(status=TaskStatus(state=state, timestamp=START + timedelta(seconds=seconds)))


# Replicated jobs


def test_a_replicated_job_starts_max_concurrent_tasks_from_slot_zero():
    svc = job(total=10, concurrent=3)
    plan = reconcile_replicated_job(svc, [], NODES, at(0))
    assert sorted(t.slot or 0 for t in plan.created) == [0, 1, 2]
    for t in plan.created:
        assert t.desired_state == TaskState.COMPLETE
        assert t.job_iteration == Version(index=0)
        assert t.status.state == TaskState.PENDING


def test_completions_are_counted_and_never_exceeded():
    svc = job(total=10, concurrent=3)
    done = [job_task(svc, s, state=TaskState.COMPLETE) for s in range(8)]
    running = [job_task(svc, 8)]
    plan = reconcile_replicated_job(svc, [*done, *running], NODES, at(0))
    # 8 complete, 1 running: one more task, in the last free slot.
    assert [t.slot for t in plan.created] == [9]
    assert plan.updated == []  # completed tasks stay desired COMPLETE
    finished = [*done, *running, *plan.created]
    finished = [ended(t, TaskState.COMPLETE) for t in finished]
    assert reconcile_replicated_job(svc, finished, NODES, at(1)).ops() == []


def test_fewer_completions_than_concurrency():
    plan = reconcile_replicated_job(job(total=2, concurrent=5), [], NODES, at(0))
    assert sorted(t.slot or 0 for t in plan.created) == [0, 1]


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(0, 12),
    concurrent=st.integers(0, 4),
    outcomes=st.lists(st.sampled_from([TaskState.COMPLETE, TaskState.FAILED]), max_size=60),
)
def test_max_concurrency_is_never_exceeded(total, concurrent, outcomes):
    """Whatever ends when, no more than MaxConcurrent tasks are meant to run at once, each
    slot has at most one, and the job ends with one completion in each slot 0..total-1."""
    svc = job(total=total, concurrent=concurrent, restart=restart_policy(delay=0))
    tasks: list[Task] = []
    memory = Memory()
    moves = iter(outcomes)
    for step in range(200):
        plan = reconcile_replicated_job(svc, tasks, NODES, at(step), memory)
        tasks, memory = apply(tasks, plan), plan.memory
        running = active(tasks)
        assert len(running) <= concurrent
        assert len({t.slot for t in running}) == len(running)
        if not running:
            break
        # The oldest running task ends, as the generated outcome says (then: completes).
        first = min(running, key=lambda t: (t.created_at, t.id))
        outcome = next(moves, TaskState.COMPLETE)
        tasks = [ended(t, outcome, step) if t.id == first.id else t for t in tasks]
    completed = [t for t in tasks if t.state == TaskState.COMPLETE]
    expected = list(range(total)) if concurrent > 0 else []
    assert sorted(t.slot or 0 for t in completed) == expected
    assert all(t.desired_state == TaskState.COMPLETE for t in completed)


def test_a_failed_task_is_restarted_in_its_slot_after_the_delay():
    svc = job(total=3, concurrent=3, restart=restart_policy(delay=5))
    failed = job_task(svc, 1, state=TaskState.FAILED)
    others = [job_task(svc, 0), job_task(svc, 2)]
    plan = reconcile_replicated_job(svc, [failed, *others], NODES, at(0))
    [shut] = plan.updated
    assert shut.id == failed.id
    assert shut.desired_state == TaskState.SHUTDOWN
    assert plan.created == []  # the slot waits, and still counts as running
    assert plan.wake_at == 5
    tasks = apply([failed, *others], plan)
    assert reconcile_replicated_job(svc, tasks, NODES, at(3), plan.memory).created == []
    later = reconcile_replicated_job(svc, tasks, NODES, at(5), plan.memory)
    [again] = later.created
    assert again.slot == 1
    assert again.desired_state == TaskState.COMPLETE


def test_condition_any_never_restarts_a_completed_task():
    svc = job(total=1, concurrent=1, restart=restart_policy(RestartCondition.ANY, delay=0))
    done = job_task(svc, 0, state=TaskState.COMPLETE)
    assert reconcile_replicated_job(svc, [done], NODES, at(0)).ops() == []


def test_max_attempts_used_up_leaves_the_slot_failed():
    svc = job(total=2, concurrent=2, restart=restart_policy(delay=0, max_attempts=1))
    tasks = [job_task(svc, 0, state=TaskState.FAILED), job_task(svc, 1)]
    plan = reconcile_replicated_job(svc, tasks, NODES, at(0))
    [retry] = plan.created
    assert retry.slot == 0
    tasks = [ended(t, TaskState.FAILED) if t.id == retry.id else t for t in apply(tasks, plan)]
    second = reconcile_replicated_job(svc, tasks, NODES, at(1), plan.memory)
    assert second.created == []  # no attempt left, and no other slot to use
    assert [t.desired_state for t in second.updated] == [TaskState.SHUTDOWN]


def test_condition_none_leaves_the_failed_slot_taken():
    svc = job(total=2, concurrent=1, restart=restart_policy(RestartCondition.NONE))
    failed = job_task(svc, 0, state=TaskState.FAILED)
    plan = reconcile_replicated_job(svc, [failed], NODES, at(0))
    # The failed slot stays failed; the job goes on with the next slot.
    assert [t.slot for t in plan.created] == [1]


def test_a_new_iteration_starts_again_and_retires_the_old_one():
    svc = job(total=2, concurrent=2, iteration=1)
    old_done = job_task(svc, 0, state=TaskState.COMPLETE, iteration=0)
    old_running = job_task(svc, 1, iteration=0)
    plan = reconcile_replicated_job(svc, [old_done, old_running], NODES, at(0))
    assert sorted(t.slot or 0 for t in plan.created) == [0, 1]
    assert all(t.job_iteration == Version(index=1) for t in plan.created)
    [removed] = plan.updated
    assert removed.id == old_running.id
    assert removed.desired_state == TaskState.REMOVE


def test_a_task_on_a_down_node_is_replaced_in_its_slot():
    svc = job(total=1, concurrent=1)
    stuck = job_task(svc, 0, node_id="n1")
    cluster = {"n1": node("n1", state=NodeState.DOWN), "n2": node("n2")}
    plan = reconcile_replicated_job(svc, [stuck], cluster, at(0))
    [replacement] = plan.created
    assert replacement.slot == 0
    assert [t.desired_state for t in plan.updated] == [TaskState.SHUTDOWN]


def test_a_new_leader_restarts_a_failure_left_pending():
    svc = job(total=1, concurrent=1, restart=restart_policy(delay=5))
    failed = job_task(svc, 0, state=TaskState.FAILED, desired=TaskState.SHUTDOWN)
    plan = reconcile_replicated_job(svc, [failed], NODES, at(0))  # no memory: a new leader
    assert plan.created == []
    assert plan.wake_at == 5
    later = reconcile_replicated_job(svc, [failed], NODES, at(5), plan.memory)
    assert [t.slot for t in later.created] == [0]


# Global jobs


def test_a_global_job_runs_once_on_every_eligible_node():
    svc = job(is_global=True, constraints=("node.labels.zone!=west",))
    late = node("late").replace(created_at=START + timedelta(seconds=1))
    cluster: dict[str, Node] = {
        "ok": node("ok"),
        "also": node("also").replace(created_at=START - timedelta(seconds=1)),
        "down": node("down", state=NodeState.DOWN),
        "unknown": node("unknown", state=NodeState.UNKNOWN),
        "drained": node("drained", availability=NodeAvailability.DRAIN),
        "paused": node("paused", availability=NodeAvailability.PAUSE),
        "west": node("west", labels={"zone": "west"}),
        "late": late,  # joined after the job's last execution
    }
    plan = reconcile_global_job(svc, [], cluster, at(0))
    assert sorted(t.node_id or "" for t in plan.created) == ["also", "ok"]
    assert all(t.desired_state == TaskState.COMPLETE for t in plan.created)
    done = [ended(t, TaskState.COMPLETE) for t in plan.created]
    assert reconcile_global_job(svc, done, cluster, at(1), plan.memory).ops() == []


def test_a_global_job_restarts_a_failed_task_on_its_node():
    svc = job(is_global=True, restart=restart_policy(delay=0))
    tasks = [
        job_task(svc, node_id="n1", state=TaskState.FAILED),
        job_task(svc, node_id="n2", state=TaskState.COMPLETE),
        job_task(svc, node_id="n3"),
    ]
    plan = reconcile_global_job(svc, tasks, NODES, at(0))
    assert [t.node_id for t in plan.created] == ["n1"]
    assert [(t.node_id, t.desired_state) for t in plan.updated] == [("n1", TaskState.SHUTDOWN)]


def test_a_global_job_shuts_down_tasks_on_nodes_that_cannot_run_them():
    svc = job(is_global=True)
    tasks = [job_task(svc, node_id="n1"), job_task(svc, node_id="n2", state=TaskState.COMPLETE)]
    cluster = {
        "n1": node("n1", state=NodeState.DOWN),
        "n2": node("n2", state=NodeState.DOWN),
    }
    plan = reconcile_global_job(svc, tasks, cluster, at(0))
    # The running task is shut down; the completed one is the job's result, and stays.
    assert [(t.node_id, t.desired_state) for t in plan.updated] == [("n1", TaskState.SHUTDOWN)]
    assert plan.created == []


def test_a_global_job_shuts_down_the_older_iterations():
    svc = job(is_global=True, iteration=2)
    old = [
        job_task(svc, node_id="n1", state=TaskState.COMPLETE, iteration=1),
        job_task(svc, node_id="n2", iteration=1),
    ]
    plan = reconcile_global_job(svc, old, nodes("n1", "n2"), at(0))
    assert sorted(t.node_id or "" for t in plan.created) == ["n1", "n2"]
    assert all(t.job_iteration == Version(index=2) for t in plan.created)
    assert all(t.desired_state == TaskState.SHUTDOWN for t in plan.updated)
    assert len(plan.updated) == 2


# The reaper


def test_the_reaper_keeps_every_task_of_a_job():
    svc = job(total=1, concurrent=1)
    history = [
        job_task(svc, 0, state=s, desired=d, iteration=i, created=i)
        for i in range(8)
        for s, d in [
            (TaskState.FAILED, TaskState.SHUTDOWN),
            (TaskState.COMPLETE, TaskState.COMPLETE),
        ]
    ]
    assert reap(svc, history, {"n1"}, 2) == []
    removed = job_task(svc, 0, state=TaskState.SHUTDOWN, desired=TaskState.REMOVE)
    assert reap(svc, [*history, removed], {"n1"}, 2) == [removed]


# The allocator and the scheduler take a job's tasks like any others


def test_a_job_task_is_allocated_scheduled_and_keeps_its_addresses_until_it_ended():
    svc = job()
    new = job_task(svc, 0, node_id=None, state=TaskState.NEW)
    pending = job_task(svc, 1, node_id=None, state=TaskState.PENDING)
    done = job_task(svc, 2, state=TaskState.COMPLETE)
    assert waits_for_addresses(new)
    assert waits_for_node(pending)
    assert not is_released(new)
    assert not is_released(pending)
    assert not is_released(job_task(svc, 3))  # running
    assert is_released(done)
    assert is_released(job_task(svc, 4, state=TaskState.FAILED, desired=TaskState.SHUTDOWN))
