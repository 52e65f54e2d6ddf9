"""The job orchestrators' decisions: tasks that run to completion, once per run of the job.

After SwarmKit's ``manager/orchestrator/jobs/{replicated,global}/reconciler.go``. A job's tasks
are created in desired state COMPLETE (the agent runs them to their end) and carry the job's
iteration (``Service.JobStatus.JobIteration``, bumped by every update of the service): only
the current iteration's tasks count; the older ones are retired.

- **Replicated job**: ``TotalCompletions`` tasks must complete, at most ``MaxConcurrent`` at a
  time. Each task has its own slot, numbered from 0; a pass creates
  ``min(MaxConcurrent - running, TotalCompletions - complete - running)`` new tasks in the
  lowest slots never used in this iteration. Older iterations' tasks that have not ended are
  marked REMOVE.
- **Global job**: one task (slot 0) on every node that is READY, active, matches the
  placement constraints and was created before the job's last execution. Tasks on nodes that
  may no longer run them are shut down; older iterations' tasks are shut down.

Restarts are the restart supervisor's (``restart.py``: the policy, its delay and MaxAttempts),
with condition ``any`` read as ``on-failure``: a task that completed is never restarted. A task
that failed is shut down and, if the policy asks, replaced in its slot (or on its node) once
the delay has passed; until then its slot counts as running. A slot whose task failed and was
not restarted stays failed for this iteration: the job then never reaches TotalCompletions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from swarmlet.manager.orchestrator.plan import (
    InstanceKey,
    Memory,
    Now,
    Plan,
    instance_order,
    is_current,
)
from swarmlet.manager.orchestrator.replicated import fail_over
from swarmlet.manager.orchestrator.restart import (
    history_with_restart,
    newest,
    restart_policy,
    restart_when_due,
    start_due_restarts,
    wants_restart,
)
from swarmlet.manager.scheduler.constraints import (
    Constraint,
    constraints_match,
    parse_constraints,
)
from swarmlet.models import (
    Node,
    NodeAvailability,
    NodeState,
    Service,
    Task,
    TaskState,
)

# States a job's task reaches by itself without completing: its process failed, or could not
# start.
_FAILED = frozenset({TaskState.FAILED, TaskState.REJECTED})


def iteration(service: Service) -> int:
    """The service's current job iteration (0 before its JobStatus is written)."""
    status = service.job_status
    return status.job_iteration.index if status is not None else 0


def _split(service: Service, tasks: Iterable[Task]) -> tuple[list[Task], list[Task]]:
    """This iteration's tasks, and the older iterations'."""
    index = iteration(service)
    mine: list[Task] = []
    older: list[Task] = []
    for task in tasks:
        if task.job_iteration is None:
            continue  # not a job's task: nothing of this service's to decide
        (mine if task.job_iteration.index == index else older).append(task)
    return mine, older


# The pipelines


def reconcile_replicated_job(
    service: Service,
    tasks: Iterable[Task],
    nodes: Mapping[str, Node],
    now: Now,
    memory: Memory | None = None,
) -> Plan:
    """Everything to change for one replicated job, given its tasks and the nodes."""
    mine, older = _split(service, tasks)
    plan = Plan(service, mine, now, memory or Memory())
    fail_over(plan, nodes)
    supervise(plan, can_replace=lambda task: True)
    recover_restarts(plan, can_start=lambda slot: True)
    start_due_restarts(plan, can_start=lambda slot: True)
    run_completions(plan)
    for task in older:
        # SwarmKit leaves an older iteration's ended tasks as they are (a completed one stays
        # desired COMPLETE) and removes those that may still run.
        if task.state <= TaskState.RUNNING and task.desired_state < TaskState.REMOVE:
            plan.set_desired(task, TaskState.REMOVE)
    return plan


def reconcile_global_job(
    service: Service,
    tasks: Iterable[Task],
    nodes: Mapping[str, Node],
    now: Now,
    memory: Memory | None = None,
) -> Plan:
    """Everything to change for one global job, given its tasks and the nodes.

    Raises InvalidSpec when the service's placement constraints do not parse.
    """
    placement = service.spec.task_template.placement
    constraints = parse_constraints(placement.constraints if placement else [])
    since = service.job_status.last_execution if service.job_status else None
    mine, older = _split(service, tasks)
    plan = Plan(service, mine, now, memory or Memory())

    def takes_tasks(node_id: InstanceKey | None) -> bool:
        return node_id is not None and _takes_tasks(nodes.get(str(node_id)), constraints, since)

    stop_misplaced(plan, nodes, constraints)
    supervise(plan, can_replace=lambda task: takes_tasks(task.node_id))
    recover_restarts(plan, can_start=takes_tasks)
    start_due_restarts(plan, can_start=takes_tasks)
    place(plan, nodes, takes_tasks)
    for task in older:
        # SwarmKit shuts down every task of an older iteration, completed ones too.
        if task.desired_state < TaskState.SHUTDOWN:
            plan.set_desired(task, TaskState.SHUTDOWN)
    return plan


# Replicated jobs


def run_completions(plan: Plan) -> None:
    """Start as many tasks as the job may run now, in the lowest unused slots.

    Every slot used in this iteration is taken: by a completed task, a running one, a restart
    waiting for its delay (these two are *running*), or a failed task the policy did not
    restart. New tasks go to the other slots of 0..TotalCompletions-1.
    """
    job = plan.service.spec.mode.replicated_job
    if job is None:
        return
    running: set[InstanceKey] = set(plan.memory.restart_at)
    taken = set(running)
    for task in plan.tasks():
        if task.slot is None:
            continue
        taken.add(task.slot)
        if is_current(task) and task.state != TaskState.COMPLETE:
            running.add(task.slot)
    wanted = min(job.max_concurrent - len(running), job.total_completions - len(taken))
    free = (slot for slot in range(job.total_completions) if slot not in taken)
    for _, slot in zip(range(wanted), free, strict=False):
        plan.new_task(slot)


# Global jobs


def _keeps_tasks(node: Node, constraints: list[Constraint]) -> bool:
    return (
        node.status.state != NodeState.DOWN
        and node.spec.availability != NodeAvailability.DRAIN
        and constraints_match(constraints, node)
    )


def _takes_tasks(node: Node | None, constraints: list[Constraint], since: datetime | None) -> bool:
    """SwarmKit's candidate nodes: READY, active, matching, and there when the job started
    (a node that joins later does not run it)."""
    return (
        node is not None
        and node.status.state == NodeState.READY
        and node.spec.availability == NodeAvailability.ACTIVE
        and constraints_match(constraints, node)
        and (since is None or node.created_at is None or node.created_at < since)
    )


def stop_misplaced(plan: Plan, nodes: Mapping[str, Node], constraints: list[Constraint]) -> None:
    """Shut down the unfinished tasks of nodes that may no longer run them (Down, drained, no
    longer matching); mark REMOVE the tasks of nodes gone from the swarm."""
    for node_id, tasks in plan.instances().items():
        node = nodes.get(str(node_id))
        for task in tasks:
            if node is None:
                plan.set_desired(task, TaskState.REMOVE)
            elif (
                is_current(task)
                and task.state <= TaskState.RUNNING
                and not _keeps_tasks(node, constraints)
            ):
                plan.set_desired(task, TaskState.SHUTDOWN)


def place(plan: Plan, nodes: Mapping[str, Node], takes_tasks: Callable[[str], bool]) -> None:
    """A task for every candidate node without one in this iteration: none running or
    completed, no restart waiting, and no failure the policy chose to leave."""
    instances = plan.instances()
    for node_id in sorted(nodes):
        if not takes_tasks(node_id) or node_id in plan.memory.restart_at:
            continue
        tasks = instances.get(node_id, [])
        if any(is_current(task) for task in tasks) or _stopped(plan, tasks):
            continue
        plan.new_task(node_id)


def _stopped(plan: Plan, tasks: list[Task]) -> bool:
    """Whether the node's task failed and the policy will not restart it."""
    if not tasks:
        return False
    last = newest(tasks)
    key = plan.key(last)
    return last.state in _FAILED and (key is None or not wants_restart(plan, last))


# Restarts, as the restart supervisor makes them, for tasks meant to COMPLETE


def supervise(plan: Plan, can_replace: Callable[[Task], bool]) -> None:
    """A task meant to complete that ended otherwise (failed, rejected, shut down) is shut
    down, and replaced in its instance where the policy asks and ``can_replace`` allows. A
    completed task stays as it is: it is never restarted."""
    for task in plan.tasks():
        if not is_current(task) or not task.state.is_terminal or task.state == TaskState.COMPLETE:
            continue
        key = plan.key(task)
        # The task did not complete: the condition ``any`` restarts it as ``on-failure`` does.
        restart = wants_restart(plan, task)
        plan.set_desired(task, TaskState.SHUTDOWN)
        if key is None or not restart or not can_replace(task):
            continue
        if not any(is_current(other) for other in plan.instance(key)):
            _restart(plan, key, task)


def _restart(plan: Plan, key: InstanceKey, ended: Task) -> None:
    """Count a restart of the instance; its replacement starts now or once the delay passed
    (a job's slot waits empty: no READY task)."""
    history = history_with_restart(plan, ended)
    if restart_policy(plan.service).delay <= 0:
        plan.new_task(key, restart_history=history)
    else:
        restart_when_due(plan, key, history)


def recover_restarts(plan: Plan, can_start: Callable[[InstanceKey], bool]) -> None:
    """On the first pass with no memory of the job (a new leader), schedule again the restarts
    a previous leader left pending: instances with no active task and no pending restart whose
    newest task failed and that the policy would restart (``restart.recover_restarts``)."""
    if plan.memory.recovered:
        return
    instances = plan.instances()
    for key in sorted(instances, key=instance_order):
        tasks = instances[key]
        if key in plan.memory.restart_at or any(is_current(task) for task in tasks):
            continue
        last = newest(tasks)
        if last.state in _FAILED and wants_restart(plan, last) and can_start(key):
            _restart(plan, key, last)
    plan.remember(replace(plan.memory, recovered=True))
