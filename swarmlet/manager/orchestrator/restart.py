"""The restart supervisor's decisions: what happens to a task that stopped on its own, and when
a task waiting to start (desired READY) may go.

After SwarmKit's ``manager/orchestrator/restart``: the stopped task is marked SHUTDOWN; if the
restart policy asks for it, a replacement is created at once in the same instance, in desired
READY — an agent prepares it, and ``docker service ps`` shows it ``Ready`` above its failed
predecessors — and it starts once the restart delay has passed. MaxAttempts counts the
restarts of an instance within Window (0: ever) under the current spec; a new spec starts
counting again.

Unlike SwarmKit, the count is not kept in the leader's memory but carried by the tasks: each
replacement holds its instance's restart history (``Task.restart_history``, wall-clock times,
its own restart last). The count and the delay of a READY replacement (due one delay after its
restart) therefore survive a manager restart or a leader change.

One exception keeps the delay from being skipped: a task *rejected* before it could start (a
missing image, a container the engine refused) is not replaced by a READY task at once — the
agent would prepare it, fail the same way at once, and the delay would never slow the loop.
Its instance waits empty until the delay has passed, then gets a replacement in desired
RUNNING. The due time of that wait is kept only in the leader's ``Memory``. A new leader (or a
manager that restarted) starts without it, so on its first pass over a service it looks at the
instances with no current task and no pending restart: one whose newest task was rejected and
that the policy would restart gets its restart scheduled again, due one delay from then. Only
the first pass does this: afterwards every such instance is one the supervisor saw end and
chose to leave stopped (a decision that a passing Window does not undo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from swarmlet.manager.orchestrator.plan import (
    InstanceKey,
    Plan,
    instance_order,
    is_current,
)
from swarmlet.models import (
    SECOND_NS,
    Node,
    NodeState,
    RestartCondition,
    RestartPolicy,
    Service,
    Task,
    TaskState,
)

# States a task reaches by itself (its process ended or could not start), as opposed to
# SHUTDOWN, which it reaches because it was asked to stop.
SELF_ENDED = frozenset({TaskState.COMPLETE, TaskState.FAILED, TaskState.REJECTED})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def restart_policy(service: Service) -> RestartPolicy:
    return service.spec.task_template.restart_policy or RestartPolicy()


def _delay(policy: RestartPolicy) -> timedelta:
    return timedelta(microseconds=policy.delay // 1000)


def condition_restarts(policy: RestartPolicy, state: TaskState) -> bool:
    """Whether the policy's condition asks to restart a task that ended in this state.

    ``on-failure`` restarts anything but a clean exit, as SwarmKit does (a task that ended
    SHUTDOWN or ORPHANED while meant to run did not complete either).
    """
    if policy.condition == RestartCondition.NONE:
        return False
    if policy.condition == RestartCondition.ON_FAILURE:
        return state != TaskState.COMPLETE
    return True


def counted_restarts(
    policy: RestartPolicy, history: Sequence[datetime], now: datetime
) -> tuple[datetime, ...]:
    """The restarts in ``history`` that count against MaxAttempts: those within Window."""
    if policy.window <= 0:
        return tuple(history)
    since = now - timedelta(microseconds=policy.window // 1000)
    return tuple(at for at in history if at > since)


def history_of(plan: Plan, task: Task) -> tuple[datetime, ...]:
    """The restarts of the task's instance under the service's current spec (none when the
    task is of another spec)."""
    if plan.is_dirty(task):
        return ()
    return task.restart_history or ()


def wants_restart(plan: Plan, task: Task) -> bool:
    """Whether the policy (condition and attempts) would restart this ended task."""
    policy = restart_policy(plan.service)
    if plan.key(task) is None or not condition_restarts(policy, task.state):
        return False
    if policy.max_attempts <= 0:
        return True
    counted = counted_restarts(policy, history_of(plan, task), plan.now.wall)
    return len(counted) < policy.max_attempts


def supervise(plan: Plan, can_replace: Callable[[Task], bool]) -> None:
    """Handle current tasks that stopped on their own: shut them down, and restart them where
    the policy asks and ``can_replace`` allows (a global service's node may no longer take
    tasks)."""
    for task in plan.tasks():
        if not is_current(task) or not task.state.is_terminal:
            continue
        key = plan.key(task)
        restart = wants_restart(plan, task)
        plan.set_desired(task, TaskState.SHUTDOWN)
        if key is None or not restart or not can_replace(task):
            continue
        # The old task of a start-first update may fail beside its replacement: the instance
        # still has a task and needs no other.
        if any(is_current(other) for other in plan.instance(key)):
            continue
        _restart(plan, key, task)


def _restart(plan: Plan, key: InstanceKey, ended: Task) -> None:
    """Count a restart of the instance and replace its ended task: at once in desired READY
    (RUNNING without a delay), or, for a task rejected before it started, once the delay has
    passed."""
    history = history_with_restart(plan, ended)
    delay = restart_policy(plan.service).delay / SECOND_NS
    if delay <= 0:
        plan.new_task(key, restart_history=history)
    elif ended.state == TaskState.REJECTED:
        restart_when_due(plan, key, history)
    else:
        plan.new_task(key, desired=TaskState.READY, restart_history=history)
        plan.wake(plan.now.mono + delay)


def history_with_restart(plan: Plan, ended: Task) -> tuple[datetime, ...]:
    """The history the ended task's replacement carries: the restarts that still count, and
    this one."""
    policy = restart_policy(plan.service)
    now = plan.now.wall
    return (*counted_restarts(policy, history_of(plan, ended), now), now)


def restart_when_due(plan: Plan, key: InstanceKey, history: tuple[datetime, ...]) -> None:
    """Leave the instance empty until the restart delay has passed; ``start_due_restarts``
    then makes the replacement, carrying ``history``."""
    memory = plan.memory
    due = plan.now.mono + restart_policy(plan.service).delay / SECOND_NS
    plan.remember(
        replace(
            memory,
            restart_at={**memory.restart_at, key: due},
            restart_histories={**memory.restart_histories, key: history},
        )
    )


def newest(tasks: Iterable[Task]) -> Task:
    """The task created last (by creation time, then by status time)."""
    return max(tasks, key=lambda task: (task.created_at or _EPOCH, task.status.timestamp or _EPOCH))


def recover_restarts(plan: Plan, can_start: Callable[[InstanceKey], bool]) -> None:
    """On the first pass with no memory of the service (a new leader), schedule again the
    restarts a previous leader left pending: those of instances with no current task and no
    pending restart whose newest task was rejected and that the policy would restart (and
    ``can_start`` allows). A delay counts from now. (Any other task that ended got its
    replacement in the commit that marked it SHUTDOWN: an instance left empty after it is one
    the supervisor chose to leave stopped.)"""
    if plan.memory.recovered:
        return
    instances = plan.instances()
    for key in sorted(instances, key=instance_order):
        tasks = instances[key]
        if key in plan.memory.restart_at or any(is_current(task) for task in tasks):
            continue
        last = newest(tasks)
        if last.state == TaskState.REJECTED and wants_restart(plan, last) and can_start(key):
            _restart(plan, key, last)
    plan.remember(replace(plan.memory, recovered=True))


def start_due_restarts(plan: Plan, can_start: Callable[[InstanceKey], bool]) -> None:
    """Create the replacements of rejected tasks whose restart delay has passed. An instance
    that meanwhile got a task (a new spec) or was removed (scaled down: it has no live task
    left) needs none.

    A replacement that ``can_start`` refuses when due (a global service's node that was
    paused, drained, went Down or stopped matching the constraints) is dropped: the global
    orchestrator's placement gives the node a task again if it becomes eligible. It is checked
    only once due, so a node paused for less than the delay still waits out the delay.
    """
    pending = dict(plan.memory.restart_at)
    histories = dict(plan.memory.restart_histories)
    for key, due in list(pending.items()):
        tasks = plan.instance(key)
        if not tasks or any(is_current(task) for task in tasks):
            del pending[key]
        elif due > plan.now.mono:
            plan.wake(due)
        else:
            del pending[key]
            if can_start(key):
                plan.new_task(key, restart_history=histories.get(key))
    histories = {key: history for key, history in histories.items() if key in pending}
    plan.remember(replace(plan.memory, restart_at=pending, restart_histories=histories))


def may_still_run(task: Task, nodes: Mapping[str, Node]) -> bool:
    """Whether the task's process may still be running somewhere: it reached a node, has not
    ended, and its node is still there and not Down."""
    if task.state.is_terminal or task.node_id is None or task.state < TaskState.ASSIGNED:
        return False
    node = nodes.get(task.node_id)
    return node is not None and node.status.state != NodeState.DOWN


def restart_due(plan: Plan, task: Task) -> datetime | None:
    """When a restart's READY replacement may start (None: it is not one)."""
    if not task.restart_history:
        return None
    return task.restart_history[-1] + _delay(restart_policy(plan.service))


def start_ready(plan: Plan, nodes: Mapping[str, Node]) -> None:
    """Move tasks waiting in desired READY to RUNNING: a restart's replacement once its delay
    has passed, and any of them once no other task of their instance may still run (a
    stop-first update's old task stops first)."""
    for task in plan.tasks():
        if task.desired_state != TaskState.READY:
            continue
        due = restart_due(plan, task)
        if due is not None and due > plan.now.wall:
            plan.wake(plan.now.mono + (due - plan.now.wall).total_seconds())
            continue
        key = plan.key(task)
        others = plan.instance(key) if key is not None else []
        if any(other.id != task.id and may_still_run(other, nodes) for other in others):
            continue  # the old task's end is an event: no timer needed
        plan.set_desired(task, TaskState.RUNNING)
