"""The restart supervisor's decisions: what happens to a task that stopped on its own, and when
a task waiting to start (desired READY) may go.

After SwarmKit's ``manager/orchestrator/restart``: the stopped task is marked SHUTDOWN; if the
restart policy asks for it, a replacement is created in the same instance once the restart
delay has passed. MaxAttempts counts the restarts of an instance within Window (0: ever) under
the current spec; a new spec starts counting again.

Unlike SwarmKit, the replacement is not created at once in desired READY: an agent prepares a
READY task (pulls, creates), so a task that fails while preparing (a missing image) would be
replaced again at once, and the delay would never slow the loop. The instance waits instead,
with nothing in it, until the delay has passed.

The due time of that wait is kept only in the leader's ``Memory``. A new leader (or a manager
that restarted) starts without it, so on its first pass over a service it looks at the
instances with no current task and no pending restart: one whose newest task ended on its own
and that the policy would restart gets its restart scheduled again, due one delay from then. A
leader change may thus delay a restart by up to one extra delay, but never loses it. Only the
first pass does this: afterwards every such instance is one the supervisor saw end and chose
to leave stopped (a decision that a passing Window or a reset restart history does not undo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from swarmlet.manager.orchestrator.plan import (
    InstanceKey,
    Memory,
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


def counted_restarts(policy: RestartPolicy, history: tuple[float, ...], now: float) -> int:
    """How many of the restarts in ``history`` (monotonic times) count against MaxAttempts."""
    if policy.window <= 0:
        return len(history)
    since = now - policy.window / SECOND_NS
    return sum(1 for at in history if at > since)


def attempts_left(policy: RestartPolicy, memory: Memory, key: InstanceKey, now: float) -> bool:
    if policy.max_attempts <= 0:
        return True
    return counted_restarts(policy, memory.restarts.get(key, ()), now) < policy.max_attempts


def wants_restart(plan: Plan, task: Task) -> bool:
    """Whether the policy (condition and attempts) would restart this ended task."""
    policy = restart_policy(plan.service)
    key = plan.key(task)
    return (
        key is not None
        and condition_restarts(policy, task.state)
        and attempts_left(policy, plan.memory, key, plan.now.mono)
    )


def supervise(plan: Plan, can_replace: Callable[[Task], bool]) -> None:
    """Handle current tasks that stopped on their own: shut them down, and restart them where
    the policy asks and ``can_replace`` allows (a global service's node may no longer take
    tasks)."""
    policy = restart_policy(plan.service)
    delay = policy.delay / SECOND_NS
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
        _restart(plan, key, delay)


def _restart(plan: Plan, key: InstanceKey, delay: float) -> None:
    """Count a restart of the instance, and start its replacement now (no delay) or once the
    delay has passed."""
    memory = plan.memory
    restarts = {**memory.restarts, key: (*memory.restarts.get(key, ()), plan.now.mono)}
    plan.remember(replace(memory, restarts=restarts))
    if delay > 0:
        restart_at = {**plan.memory.restart_at, key: plan.now.mono + delay}
        plan.remember(replace(plan.memory, restart_at=restart_at))
    else:
        plan.new_task(key)


def newest(tasks: Iterable[Task]) -> Task:
    """The task created last (by creation time, then by status time)."""
    return max(tasks, key=lambda task: (task.created_at or _EPOCH, task.status.timestamp or _EPOCH))


def recover_restarts(plan: Plan, can_start: Callable[[InstanceKey], bool]) -> None:
    """On the first pass with no memory of the service (a new leader), schedule again the
    restarts a previous leader left pending: those of instances with no current task and no
    pending restart, whose newest task ended on its own and that the policy would restart
    (and ``can_start`` allows). The delay counts from now; the restart counts against
    MaxAttempts, as the lost one did."""
    if plan.memory.recovered:
        return
    delay = restart_policy(plan.service).delay / SECOND_NS
    instances = plan.instances()
    for key in sorted(instances, key=instance_order):
        tasks = instances[key]
        if key in plan.memory.restart_at or any(is_current(task) for task in tasks):
            continue
        last = newest(tasks)
        if last.state in SELF_ENDED and wants_restart(plan, last) and can_start(key):
            _restart(plan, key, delay)
    plan.remember(replace(plan.memory, recovered=True))


def start_due_restarts(plan: Plan, can_start: Callable[[InstanceKey], bool]) -> None:
    """Create the replacements whose restart delay has passed. An instance that meanwhile got
    a task (a new spec) or was removed (scaled down: it has no live task left) needs none.

    A replacement that ``can_start`` refuses when due (a global service's node that was
    paused, drained, went Down or stopped matching the constraints) is dropped: the global
    orchestrator's placement gives the node a task again if it becomes eligible. It is checked
    only once due, so a node paused for less than the delay still waits out the delay.
    """
    pending = dict(plan.memory.restart_at)
    for key, due in list(pending.items()):
        tasks = plan.instance(key)
        if not tasks or any(is_current(task) for task in tasks):
            del pending[key]
        elif due > plan.now.mono:
            plan.wake(due)
        else:
            del pending[key]
            if can_start(key):
                plan.new_task(key)
    plan.remember(replace(plan.memory, restart_at=pending))


def may_still_run(task: Task, nodes: Mapping[str, Node]) -> bool:
    """Whether the task's process may still be running somewhere: it reached a node, has not
    ended, and its node is still there and not Down."""
    if task.state.is_terminal or task.node_id is None or task.state < TaskState.ASSIGNED:
        return False
    node = nodes.get(task.node_id)
    return node is not None and node.status.state != NodeState.DOWN


def start_ready(plan: Plan, nodes: Mapping[str, Node]) -> None:
    """Move tasks waiting in desired READY (a stop-first update's replacement) to RUNNING once
    no other task of their instance may still be running: the old one stops first."""
    for task in plan.tasks():
        if task.desired_state != TaskState.READY:
            continue
        key = plan.key(task)
        others = plan.instance(key) if key is not None else []
        if any(other.id != task.id and may_still_run(other, nodes) for other in others):
            continue  # the old task's end is an event: no timer needed
        plan.set_desired(task, TaskState.RUNNING)
