"""What an orchestrator pass decides for one service, and the words its decisions are made of.

A pass over a service is a pipeline of pure steps (scale or place, fail over, restart, roll,
start) that each read the service's tasks *as the earlier steps left them* and add changes to
one ``Plan``. The controller writes the plan in one ``await store.update`` and keeps the plan's
``memory`` for the next pass.

An *instance* is what a task stands for: a slot number for a replicated service, a node ID for
a global one. A task is *current* in its instance while its desired state is at most RUNNING,
*live* until it is marked REMOVE, and *dirty* when its spec differs from the service's task
template.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from swarmlet.ids import new_id
from swarmlet.manager.allocator import PENDING_MESSAGE, tasks_need_addresses
from swarmlet.manager.store import Op
from swarmlet.models import Driver, Service, Task, TaskState, TaskStatus, Version

# A replicated task's slot number, or a global task's node ID.
InstanceKey = int | str

# A new task waits in NEW for the allocator (its network addresses), which moves it to PENDING;
# one with no address to be given is created PENDING, as the allocator would leave it.
CREATED_MESSAGE = "created"


@dataclass(frozen=True)
class Now:
    """The time of a pass: wall-clock for timestamps users see, monotonic for deadlines."""

    wall: datetime
    mono: float


@dataclass(frozen=True)
class Rollout:
    """What the rolling update (or rollback) in progress remembers, like SwarmKit's updater:
    a new spec or a new start of the update begins with a fresh one."""

    # How many instances were dirty when it began: the failure ratio's denominator.
    size: int = 0
    # Instances of the current batch whose new task has not run yet.
    updating: frozenset[InstanceKey] = frozenset()
    # Monotonic time before which the next batch must not start.
    next_batch_at: float = 0.0
    # Every task this update created -> the monotonic time a pass first saw it running (None:
    # not yet). Only these tasks' failures count, and only before or within Monitor of that.
    started: Mapping[str, float | None] = field(default_factory=dict)
    # The tasks already counted as failures.
    failed: frozenset[str] = frozenset()
    # Monotonic time until which the finished update still watches for failures (None: the
    # last batch is not done yet).
    monitor_until: float | None = None


@dataclass(frozen=True)
class Memory:
    """What an orchestrator remembers about one service between passes.

    It lives in the leader's memory only, like SwarmKit's updater state: a new leader starts
    with none. (The restart history is on the tasks: ``Task.restart_history``.) Its first pass
    over a service schedules again the restarts of rejected tasks the old leader had pending,
    due one delay after that pass (``restart.recover_restarts``): a leader change may delay
    such a restart by up to one extra delay, never lose it. What is lost for good: the rolling
    update's batch in flight, its delay and the failures it counted (the next batch may start
    early; the new leader's update counts afresh, over the instances still dirty).
    """

    # The spec version the rollout is for: a new spec starts a new update.
    spec_version: int = 0
    # Instance -> monotonic time when the replacement of its ended task is due, for an
    # instance left empty meanwhile (its task was rejected before it could start), and the
    # restart history the replacement will carry.
    restart_at: Mapping[InstanceKey, float] = field(default_factory=dict)
    restart_histories: Mapping[InstanceKey, tuple[datetime, ...]] = field(default_factory=dict)
    # The rolling update in progress (update.py).
    rollout: Rollout = field(default_factory=Rollout)
    # Whether a pass has looked for restarts a previous leader left pending (only the first
    # one does: see restart.recover_restarts).
    recovered: bool = False


def is_current(task: Task) -> bool:
    """Meant to run: desired state at most RUNNING, or COMPLETE for a job's task (which a
    service's task never has)."""
    return task.desired_state <= TaskState.COMPLETE


def is_live(task: Task) -> bool:
    return task.desired_state <= TaskState.SHUTDOWN


def instance_order(key: InstanceKey) -> tuple[int, str]:
    """Sort key over instance keys: slots by number, nodes by ID."""
    return (key, "") if isinstance(key, int) else (0, key)


class Plan:
    """Changes to one service's tasks (and its update status), built up step by step."""

    def __init__(self, service: Service, tasks: Iterable[Task], now: Now, memory: Memory) -> None:
        self.service = service
        self.now = now
        if memory.spec_version != service.spec_version.index:
            # A new spec: its update is a new one.
            memory = replace(memory, spec_version=service.spec_version.index, rollout=Rollout())
        self.memory = memory
        # The service with a changed update status, when it changed.
        self.updated_service: Service | None = None
        # Monotonic time of the next time-based decision, if one waits.
        self.wake_at: float | None = None
        self._tasks: dict[str, Task] = {}
        # Instance -> IDs of its tasks (a task never changes instance).
        self._by_key: dict[InstanceKey, list[str]] = {}
        self._created: set[str] = set()
        self._updated: set[str] = set()
        # Every task the plan makes starts with this status: one object, shared (models are
        # immutable), not one built per task of a service scaled by thousands.
        self._new_status = (
            TaskStatus(state=TaskState.NEW, message=CREATED_MESSAGE, timestamp=now.wall)
            if tasks_need_addresses(service)
            else TaskStatus(state=TaskState.PENDING, message=PENDING_MESSAGE, timestamp=now.wall)
        )
        for task in tasks:
            self._add(task)

    # Reading the tasks as the plan has them so far.

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def key(self, task: Task) -> InstanceKey | None:
        if self.service.is_global:
            return task.node_id
        return task.slot

    def task(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def instances(self) -> dict[InstanceKey, list[Task]]:
        """Live tasks by instance (instances with none left out)."""
        groups = {key: self.instance(key) for key in self._by_key}
        return {key: tasks for key, tasks in groups.items() if tasks}

    def instance(self, key: InstanceKey) -> list[Task]:
        """The live tasks of one instance."""
        tasks = (self._tasks[task_id] for task_id in self._by_key.get(key, ()))
        return [task for task in tasks if is_live(task)]

    def is_dirty(self, task: Task) -> bool:
        # As in SwarmKit, a change of published ports makes tasks dirty too: they must join
        # (or leave) the ingress network, which only a new task can.
        spec = self.service.spec
        # Tasks made from the spec share its objects: most comparisons end at ``is``.
        return (task.spec is not spec.task_template and task.spec != spec.task_template) or (
            task.endpoint_spec is not spec.endpoint_spec
            and task.endpoint_spec != spec.endpoint_spec
        )

    # Changing them.

    def new_task(
        self,
        key: InstanceKey,
        desired: TaskState | None = None,
        restart_history: tuple[datetime, ...] | None = None,
    ) -> Task:
        """A fresh task for an instance, from the service's current spec, added to the plan
        (a restart's replacement carries the instance's restart history). It is meant to run
        (RUNNING), or for a job, to run to completion (COMPLETE) in the job's current run."""
        service = self.service
        job = service.spec.mode.is_job
        if desired is None:
            desired = TaskState.COMPLETE if job else TaskState.RUNNING
        status = service.job_status
        iteration = (status.job_iteration if status else Version()) if job else None
        if isinstance(key, str):
            slot, node_id, name = None, key, f"{service.spec.name}.{key}"
        else:
            slot, node_id, name = key, None, f"{service.spec.name}.{key}"
        task = Task(
            id=new_id(),
            name=name,
            service_id=service.id,
            service_name=service.spec.name,
            service_labels=service.spec.labels or None,
            slot=slot,
            node_id=node_id,
            spec=service.spec.task_template,
            endpoint_spec=service.spec.endpoint_spec,
            spec_version=service.spec_version,
            status=self._new_status,
            desired_state=desired,
            restart_history=restart_history,
            job_iteration=iteration,
        )
        self._add(task)
        self._created.add(task.id)
        return task

    def _add(self, task: Task) -> None:
        self._tasks[task.id] = task
        key = self.key(task)
        if key is not None:
            self._by_key.setdefault(key, []).append(task.id)

    def update(self, task: Task) -> None:
        """Record a changed task (its slot and node stay as they were)."""
        self._tasks[task.id] = task
        if task.id not in self._created:
            self._updated.add(task.id)

    def set_desired(self, task: Task, desired: TaskState) -> Task:
        changed = task.replace(desired_state=desired)
        self.update(changed)
        return changed

    def update_service(self, service: Service) -> None:
        self.updated_service = service
        self.service = service

    def remember(self, memory: Memory) -> None:
        self.memory = memory

    def wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)

    # The result.

    @property
    def created(self) -> list[Task]:
        return [self._tasks[task_id] for task_id in sorted(self._created)]

    @property
    def updated(self) -> list[Task]:
        return [self._tasks[task_id] for task_id in sorted(self._updated)]

    def ops(self, default_log_driver: Driver | None = None) -> list[Op]:
        """The plan's writes. A task made without a log driver of its own gets the swarm's
        default (``TaskDefaults.LogDriver``) when it is made, as SwarmKit's NewTask gives
        it: a later change of the default leaves it as it is."""
        created = self.created
        if default_log_driver is not None:
            created = [
                task if task.spec.log_driver else task.replace(log_driver=default_log_driver)
                for task in created
            ]
        ops = [Op.create(task) for task in created]
        ops += [Op.update(task) for task in self.updated]
        if self.updated_service is not None:
            ops.append(Op.update(self.updated_service))
        return ops
