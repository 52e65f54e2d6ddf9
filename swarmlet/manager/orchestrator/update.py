"""The rolling update's decisions: which instances get a task from the new spec, and when.

When a service's spec changes, the instances whose current task is dirty are replaced in
batches of ``UpdateConfig.Parallelism`` (0: all at once). A batch is done when each of its new
tasks runs (or ended and will not be restarted); the next one starts ``Delay`` later.
``stop-first`` shuts the old task down and starts its replacement once it has stopped (the
replacement waits in desired READY; ``restart.start_ready`` lets it go); ``start-first``
starts the replacement at once and shuts the old task down when the replacement runs.

A task that is not dirty (the change was only a scale, say) keeps running: its spec version is
brought up to the service's in place.

Rollback and failure handling (FailureAction, Monitor, MaxFailureRatio) are not done here.
"""

from __future__ import annotations

from dataclasses import replace

from swarmlet.manager.orchestrator.plan import (
    InstanceKey,
    Plan,
    instance_order,
    is_current,
    rfc3339,
)
from swarmlet.models import SECOND_NS, Task, TaskState, UpdateConfig, UpdateOrder
from swarmlet.models.service import UpdateState, UpdateStatus

UPDATING_MESSAGE = "update in progress"
COMPLETED_MESSAGE = "update completed"


def _in_flight(plan: Plan, tasks: list[Task]) -> bool:
    """Whether an instance of the batch still waits for its new task to run."""
    current = [task for task in tasks if is_current(task)]
    fresh = [task for task in current if not plan.is_dirty(task)]
    if not fresh:
        return False  # the new task ended and was not restarted: nothing more to wait for
    return all(task.state != TaskState.RUNNING for task in fresh)


def roll(plan: Plan) -> None:
    service = plan.service
    config = service.spec.update_config or UpdateConfig()
    now = plan.now
    stale: list[InstanceKey] = []
    instances = plan.instances()
    for key in sorted(instances, key=instance_order):
        current = [task for task in instances[key] if is_current(task)]
        fresh = [task for task in current if not plan.is_dirty(task)]
        dirty = [task for task in current if plan.is_dirty(task)]
        for task in fresh:
            if task.spec_version != service.spec_version:
                plan.update(task.replace(spec_version=service.spec_version))
        if dirty and not fresh:
            stale.append(key)
        elif dirty and any(task.state == TaskState.RUNNING for task in fresh):
            # start-first: the replacement runs, the old task can go.
            for task in dirty:
                plan.set_desired(task, TaskState.SHUTDOWN)

    memory = plan.memory
    updating = {key for key in memory.updating if _in_flight(plan, plan.instance(key))}
    next_batch_at = memory.next_batch_at
    if memory.updating and not updating:
        next_batch_at = now.mono + config.delay / SECOND_NS
    if stale and not updating:
        if now.mono >= next_batch_at:
            size = config.parallelism if config.parallelism > 0 else len(stale)
            for key in stale[:size]:
                _replace(plan, key, config.order)
                updating.add(key)
        else:
            plan.wake(next_batch_at)
    plan.remember(replace(memory, updating=frozenset(updating), next_batch_at=next_batch_at))
    _set_update_status(plan, active=bool(stale or updating))


def _replace(plan: Plan, key: InstanceKey, order: UpdateOrder) -> None:
    dirty = [task for task in plan.instance(key) if is_current(task)]
    if order == UpdateOrder.START_FIRST:
        plan.new_task(key, desired=TaskState.RUNNING)
        return
    for task in dirty:
        plan.set_desired(task, TaskState.SHUTDOWN)
    plan.new_task(key, desired=TaskState.READY)


def _set_update_status(plan: Plan, *, active: bool) -> None:
    """Tell the CLI's progress display how the update goes. A service that was only created
    (no previous spec) has no update to report."""
    service = plan.service
    if service.previous_spec is None:
        return
    status = service.update_status
    updating = status is not None and status.state == UpdateState.UPDATING
    wall = rfc3339(plan.now.wall)
    if active and not updating:
        new = UpdateStatus(state=UpdateState.UPDATING, started_at=wall, message=UPDATING_MESSAGE)
    elif not active and updating and status is not None:
        new = status.replace(
            state=UpdateState.COMPLETED, completed_at=wall, message=COMPLETED_MESSAGE
        )
    else:
        return
    plan.update_service(service.replace(update_status=new))
