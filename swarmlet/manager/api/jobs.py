"""What the service endpoints do for jobs (``replicated-job``, ``global-job``): their
``JobStatus``, bumped by every update, and their ``ServiceStatus`` for ``service ls``.

After SwarmKit's controlapi (CreateService, UpdateService, ListServiceStatuses). The CLI shows
a job as ``running/desired (completed/total completed)`` from these counts, and follows a run
of the job by its iteration (the tasks' ``JobIteration``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from swarmlet.models import Service, ServiceSpec, ServiceStatus, Task, TaskState, Version
from swarmlet.models.service import JobStatus


def new_job_status(spec: ServiceSpec, now: datetime) -> JobStatus | None:
    """A new job's status: its first iteration (0), executed now. None for a service."""
    return JobStatus(last_execution=now) if spec.mode.is_job else None


def next_job_status(current: Service, now: datetime) -> JobStatus | None:
    """A job's status after an update of any kind (a spec change, ``--force``, a rollback):
    the next iteration, executed now, so the job runs again. None for a service."""
    status = current.job_status
    if status is None:
        return new_job_status(current.spec, now)
    return status.replace(
        job_iteration=Version(index=status.job_iteration.index + 1), last_execution=now
    )


def job_service_status(service: Service, tasks: Iterable[Task]) -> ServiceStatus:
    """A job's running, desired and completed tasks, counting only the current iteration's
    (SwarmKit's ListServiceStatuses). Desired is MaxConcurrent for a replicated job, so a
    finished one shows ``0/2 (10/10 completed)``; for a global job it is the tasks meant to
    complete that have not yet."""
    index = service.job_status.job_iteration.index if service.job_status else 0
    replicated = service.spec.mode.replicated_job
    running = completed = desired = 0
    for task in tasks:
        if task.job_iteration is None or task.job_iteration.index != index:
            continue
        state = task.status.state
        if state is TaskState.COMPLETE:
            completed += 1
        elif state is TaskState.RUNNING:
            running += 1
        if replicated is None and task.desired_state is TaskState.COMPLETE:
            desired += state is not TaskState.COMPLETE
    if replicated is not None:
        desired = replicated.max_concurrent
    return ServiceStatus(running_tasks=running, desired_tasks=desired, completed_tasks=completed)
