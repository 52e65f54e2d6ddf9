"""Tasks, in the shape of the Engine API's ``Task``, and the order of their states."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from swarmlet.models.base import Model, OmitEmpty, StoredObject, Version, ZeroIsDefault
from swarmlet.models.network import NetworkAttachment
from swarmlet.models.resources import GenericResource
from swarmlet.models.secret import Driver
from swarmlet.models.service import EndpointSpec, PortConfig, TaskSpec


class TaskState(StrEnum):
    NEW = "new"
    PENDING = "pending"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    READY = "ready"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    SHUTDOWN = "shutdown"
    FAILED = "failed"
    REJECTED = "rejected"
    REMOVE = "remove"
    ORPHANED = "orphaned"

    @property
    def rank(self) -> int:
        """Swarm's number for the state: states compare by it, and a task only moves up."""
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if isinstance(other, TaskState):
            return self.rank < other.rank
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, TaskState):
            return self.rank <= other.rank
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, TaskState):
            return self.rank > other.rank
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, TaskState):
            return self.rank >= other.rank
        return NotImplemented

    @property
    def is_terminal(self) -> bool:
        """The task's process is gone for good: it will never run again."""
        return self.rank > TaskState.RUNNING.rank


_RANK = {
    TaskState.NEW: 0,
    TaskState.PENDING: 64,
    TaskState.ASSIGNED: 192,
    TaskState.ACCEPTED: 256,
    TaskState.PREPARING: 320,
    TaskState.READY: 384,
    TaskState.STARTING: 448,
    TaskState.RUNNING: 512,
    TaskState.COMPLETE: 576,
    TaskState.SHUTDOWN: 640,
    TaskState.FAILED: 704,
    TaskState.REJECTED: 768,
    TaskState.REMOVE: 800,
    TaskState.ORPHANED: 832,
}


class ContainerStatus(Model):
    container_id: ZeroIsDefault[str | None] = None
    pid: ZeroIsDefault[int | None] = None
    # Always written, as Go writes it (0 while the container runs; null is "not set").
    exit_code: int = 0


class PortStatus(Model):
    """The ports a task published in ``mode=host``, with the host port each one got."""

    ports: ZeroIsDefault[list[PortConfig] | None] = None


class TaskStatus(Model):
    timestamp: datetime | None = None
    state: TaskState = TaskState.NEW
    message: str = ""
    err: ZeroIsDefault[str | None] = None
    container_status: ContainerStatus | None = None
    # Always written, as Go writes a struct (``{}`` when the task published no host port).
    port_status: PortStatus = Field(default_factory=PortStatus)


class Task(StoredObject):
    # SwarmKit's task has no name (``naming.Task`` derives one), nor these.
    _not_in_api = {
        "name",
        "service_name",
        "service_labels",
        "spec_version",
        "endpoint_spec",
        "restart_history",
        "log_driver",
    }

    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    spec: TaskSpec = Field(default_factory=TaskSpec)
    spec_version: Version = Field(default_factory=Version)
    service_id: str
    # Not in the Engine API (Swarm keeps it as ServiceAnnotations): the agent names and
    # labels containers with it without asking the manager.
    service_name: str = ""
    # Not in the Engine API either (Swarm's ServiceAnnotations.Labels): the service's labels
    # when the task was made, for the templates' ``.Service.Labels`` (docs/templates.md).
    service_labels: dict[str, str] | None = None
    slot: int | None = None
    node_id: str | None = None
    status: TaskStatus = Field(default_factory=TaskStatus)
    desired_state: TaskState = TaskState.RUNNING
    networks_attachments: OmitEmpty[list[NetworkAttachment]] = Field(default_factory=list)
    # Not in the Engine API (SwarmKit keeps the whole Endpoint): the service's endpoint spec
    # the task was made for, so a change of published ports replaces the task.
    endpoint_spec: EndpointSpec | None = None
    # A job's task: the run of the job (the service's JobStatus.JobIteration) it belongs to.
    job_iteration: Version | None = None
    # Not in the Engine API (SwarmKit's Task.LogDriver): the swarm's default log driver
    # (TaskDefaults) when the task was made, for a task whose spec names none.
    log_driver: Driver | None = None
    # Not in the Engine API (SwarmKit keeps it in the leader's memory): the times its instance
    # was restarted under the task's spec, this task's own restart last. A restart's
    # replacement carries it, so MaxAttempts and the restart delay survive a manager restart.
    restart_history: tuple[datetime, ...] | None = None
    # The node's generic resources the scheduler gave the task (its discrete ones as a
    # count, its named ones by value), as SwarmKit's AssignedGenericResources.
    assigned_generic_resources: list[GenericResource] | None = None

    @property
    def state(self) -> TaskState:
        return self.status.state

    @property
    def is_attachment(self) -> bool:
        """A plain container's place on an attachable network (``docker run --network``): made
        by the manager for the node that asked, given its address by the allocator, and never
        run by a worker nor touched by the orchestrators or the scheduler."""
        return not self.service_id and self.spec.network_attachment_spec is not None
