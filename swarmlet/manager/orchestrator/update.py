"""The rolling update's decisions: which instances get a task from the new spec, and when; what
a failure does; and the ``UpdateStatus`` the CLI's progress display reads.

After SwarmKit's updater (manager/orchestrator/update/updater.go). When a service's spec
changes, the instances whose current task is dirty are replaced in batches of
``Parallelism`` (0: all at once). A batch is done when each of its new tasks runs (or ended and
will not be restarted); the next one starts ``Delay`` later. ``stop-first`` shuts the old task
down and starts its replacement once it has stopped (the replacement waits in desired READY;
``restart.start_ready`` lets it go); ``start-first`` starts the replacement at once and shuts
the old task down when the replacement runs. A rollback (``UpdateStatus`` rollback_started) is
the same rollout, driven by ``RollbackConfig``.

Unless ``FailureAction`` is ``continue``, a task this update created that ends (any end: a
clean exit is an "early termination" too) before it ran, or within ``Monitor`` of running,
counts as a failure. Once failures / dirty instances exceeds ``MaxFailureRatio`` (strictly,
in float32 as SwarmKit compares them, so with the default 0 the first failure does it), the
action fires: ``pause`` pauses the update (or the rollback); ``rollback`` puts the previous
spec back and rolls it out, except during a rollback, which is paused instead ("never roll
back a rollback"). A paused update makes no more batches until the next service update. After
the last batch (and its delay) the update still watches for ``Monitor`` before it completes.

A task that is not dirty (the change was only a scale, say) keeps running: its spec version is
brought up to the service's in place.
"""

from __future__ import annotations

import struct
from dataclasses import replace

from swarmlet.clock import rfc3339
from swarmlet.manager.orchestrator.plan import (
    InstanceKey,
    Plan,
    Rollout,
    instance_order,
    is_current,
)
from swarmlet.manager.orchestrator.restart import newest
from swarmlet.models import SECOND_NS, Task, TaskState, UpdateConfig, UpdateOrder
from swarmlet.models.service import FailureAction, Service, UpdateState, UpdateStatus

UPDATING_MESSAGE = "update in progress"
COMPLETED_MESSAGE = "update completed"
ROLLBACK_COMPLETED_MESSAGE = "rollback completed"
PAUSED_MESSAGE = "update paused due to failure or early termination of task {}"
ROLLED_BACK_MESSAGE = "update rolled back due to failure or early termination of task {}"
ROLLBACK_PAUSED_MESSAGE = "rollback paused due to failure or early termination of task {}"

_PAUSED = frozenset({UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED})
_ACTIVE = frozenset({UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED})


def is_rolling_back(service: Service) -> bool:
    status = service.update_status
    return status is not None and status.state == UpdateState.ROLLBACK_STARTED


def rollout_config(service: Service) -> UpdateConfig:
    """The config the rollout follows: RollbackConfig during a rollback, else UpdateConfig
    (Swarm's defaults for either when the spec has none)."""
    spec = service.spec
    config = spec.rollback_config if is_rolling_back(service) else spec.update_config
    return config or UpdateConfig()


def roll(plan: Plan) -> None:
    """One pass of the service's rollout: tidy, count failures (and act on one), start the
    next batch when it is due, and write UpdateStatus as it starts, pauses, rolls back or
    completes."""
    service = plan.service
    stale = _tidy(plan)
    status = service.update_status
    if status is not None and status.state in _PAUSED:
        return  # until the next service update, as SwarmKit's Run
    config = rollout_config(service)
    rollout = plan.memory.rollout
    starting = status is None and bool(stale)
    if starting:
        rollout = Rollout()
    if stale and rollout.size == 0:
        rollout = replace(rollout, size=len(stale) + len(rollout.updating))
    rollout = _note_started(plan, rollout)
    if config.failure_action != FailureAction.CONTINUE:
        failed, rollout = _count_failures(plan, rollout, config)
        if failed is not None:
            plan.remember(replace(plan.memory, rollout=rollout))
            _fail(plan, failed)
            return
    rollout = _batches(plan, rollout, config, stale)
    if starting:
        new = UpdateStatus(
            state=UpdateState.UPDATING, started_at=rfc3339(plan.now.wall), message=UPDATING_MESSAGE
        )
        plan.update_service(service.replace(update_status=new))
    elif not stale and not rollout.updating and status is not None and status.state in _ACTIVE:
        rollout = _finish(plan, rollout, config)
    plan.remember(replace(plan.memory, rollout=rollout))


def _tidy(plan: Plan) -> list[InstanceKey]:
    """Bring clean tasks up to the spec version, shut down what a start-first replacement now
    replaces, and return the stale instances: dirty, with no new task yet (or left empty for
    the restart delay of a rejected task of an old spec)."""
    service = plan.service
    stale: list[InstanceKey] = []
    instances = plan.instances()
    for key in sorted(instances, key=instance_order):
        current = [task for task in instances[key] if is_current(task)]
        fresh = [task for task in current if not plan.is_dirty(task)]
        dirty = [task for task in current if plan.is_dirty(task)]
        for task in fresh:
            if task.spec_version != service.spec_version:
                plan.update(task.replace(spec_version=service.spec_version))
        if (dirty and not fresh) or _restart_is_stale(plan, key, instances[key], current):
            stale.append(key)
        elif dirty and any(task.state == TaskState.RUNNING for task in fresh):
            # start-first: the replacement runs, the old task can go.
            for task in dirty:
                plan.set_desired(task, TaskState.SHUTDOWN)
    return stale


def _restart_is_stale(plan: Plan, key: InstanceKey, tasks: list[Task], current: list[Task]) -> bool:
    """An instance left empty for a rejected task's restart delay, that task of an old spec:
    the rollout replaces it now (as SwarmKit's updater replaces the READY task its restart
    supervisor leaves), rather than the restart bringing the old spec back later."""
    return not current and key in plan.memory.restart_at and plan.is_dirty(newest(tasks))


def _note_started(plan: Plan, rollout: Rollout) -> Rollout:
    """Remember when each of the update's tasks was first seen running: its Monitor counts
    from there. (A pass sees that moment: the batch waits for it.)"""
    started = dict(rollout.started)
    for task_id, at in rollout.started.items():
        task = plan.task(task_id)
        if at is None and task is not None and task.state == TaskState.RUNNING:
            started[task_id] = plan.now.mono
    return replace(rollout, started=started)


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _count_failures(
    plan: Plan, rollout: Rollout, config: UpdateConfig
) -> tuple[Task | None, Rollout]:
    """Count the update's tasks that ended early; return the one that tipped the ratio over
    MaxFailureRatio, if one did."""
    monitor = config.monitor / SECOND_NS
    failed = set(rollout.failed)
    for task_id, started in rollout.started.items():
        task = plan.task(task_id)
        if task is None or task_id in failed or task.state <= TaskState.RUNNING:
            continue
        if started is not None and plan.now.mono - started > monitor:
            continue  # it ran long enough: an end like any other
        failed.add(task_id)
        ratio = _float32(len(failed)) / _float32(max(rollout.size, 1))
        if ratio > _float32(config.max_failure_ratio):
            return task, replace(rollout, failed=frozenset(failed))
    return None, replace(rollout, failed=frozenset(failed))


def _fail(plan: Plan, task: Task) -> None:
    """The failure action: pause, or roll back to the previous spec (a rollback is paused
    instead, and so is an update with no previous spec to go back to)."""
    service = plan.service
    status = service.update_status or UpdateStatus(state=UpdateState.UPDATING)
    action = rollout_config(service).failure_action
    rolling_back = status.state == UpdateState.ROLLBACK_STARTED
    if action == FailureAction.ROLLBACK and not rolling_back and service.previous_spec is not None:
        new = status.replace(
            state=UpdateState.ROLLBACK_STARTED, message=ROLLED_BACK_MESSAGE.format(task.id)
        )
        plan.update_service(
            service.replace(
                spec=service.previous_spec,
                previous_spec=None,
                spec_version=service.spec_version.replace(index=service.spec_version.index + 1),
                update_status=new,
            )
        )
        plan.wake(plan.now.mono)  # the rollback's first batch, on the next pass
        return
    message = (
        ROLLBACK_PAUSED_MESSAGE
        if action == FailureAction.ROLLBACK and rolling_back
        else PAUSED_MESSAGE
    ).format(task.id)
    state = UpdateState.ROLLBACK_PAUSED if rolling_back else UpdateState.PAUSED
    plan.update_service(service.replace(update_status=status.replace(state=state, message=message)))


def _batches(
    plan: Plan, rollout: Rollout, config: UpdateConfig, stale: list[InstanceKey]
) -> Rollout:
    """Start the next batch once the one in flight is done and the delay has passed."""
    now = plan.now.mono
    updating = {key for key in rollout.updating if _in_flight(plan, rollout, key)}
    next_batch_at = rollout.next_batch_at
    if rollout.updating and not updating:
        next_batch_at = now + config.delay / SECOND_NS
    started = dict(rollout.started)
    if stale and not updating:
        if now >= next_batch_at:
            size = config.parallelism if config.parallelism > 0 else len(stale)
            for key in stale[:size]:
                started[_replace(plan, key, config.order).id] = None
                updating.add(key)
        else:
            plan.wake(next_batch_at)
    return replace(
        rollout, updating=frozenset(updating), next_batch_at=next_batch_at, started=started
    )


def _in_flight(plan: Plan, rollout: Rollout, key: InstanceKey) -> bool:
    """Whether an instance of the batch still waits for the task the update made there to
    run. One that ended instead is done too, as in SwarmKit: its restart (a task of the
    restart supervisor's, after its delay) is not waited for."""
    return any(
        task.id in rollout.started and is_current(task) and task.state < TaskState.RUNNING
        for task in plan.instance(key)
    )


def _replace(plan: Plan, key: InstanceKey, order: UpdateOrder) -> Task:
    dirty = [task for task in plan.instance(key) if is_current(task)]
    if order == UpdateOrder.START_FIRST:
        return plan.new_task(key, desired=TaskState.RUNNING)
    for task in dirty:
        plan.set_desired(task, TaskState.SHUTDOWN)
    return plan.new_task(key, desired=TaskState.READY)


def _finish(plan: Plan, rollout: Rollout, config: UpdateConfig) -> Rollout:
    """Complete the update once its last batch is done and Monitor has passed since (at once
    when there was nothing to roll out: a rollback to an identical spec, say)."""
    if rollout.size > 0:
        if rollout.monitor_until is None:
            rollout = replace(
                rollout,
                monitor_until=max(plan.now.mono, rollout.next_batch_at)
                + config.monitor / SECOND_NS,
            )
        assert rollout.monitor_until is not None
        if plan.now.mono < rollout.monitor_until:
            plan.wake(rollout.monitor_until)
            return rollout
    service = plan.service
    status = service.update_status
    assert status is not None
    rolled_back = status.state == UpdateState.ROLLBACK_STARTED
    new = status.replace(
        state=UpdateState.ROLLBACK_COMPLETED if rolled_back else UpdateState.COMPLETED,
        message=ROLLBACK_COMPLETED_MESSAGE if rolled_back else COMPLETED_MESSAGE,
        completed_at=rfc3339(plan.now.wall),
    )
    plan.update_service(service.replace(update_status=new))
    return rollout
