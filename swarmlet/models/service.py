"""Services and the task template they stamp tasks from, in the Engine API's shapes.

Durations are integers of nanoseconds, as on the wire. The fields declared ``ZeroIsDefault``
with a default other than None are those where moby's conversion (daemon/cluster/convert)
takes an empty value as Swarm's default: a restart condition, an update's failure action,
order and monitor period, an endpoint's mode, a port's protocol and publish mode, a mount's
type, the runtime, the isolation. Those whose default is None are Go's ``omitempty`` fields:
empty is not set.

What is written back leaves out what moby's types leave out (``omitempty``, see
``models/base.py``): the fields declared ``OmitEmpty`` when empty, ``OmitUnset`` while never
set, ``None`` always.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, model_validator

from swarmlet.models.base import (
    Model,
    OmitEmpty,
    OmitUnset,
    StoredObject,
    Unset,
    Version,
    ZeroIsDefault,
)
from swarmlet.models.resources import GenericResource
from swarmlet.models.secret import ConfigReference, Driver, SecretReference

SECOND_NS = 1_000_000_000


class MountType(StrEnum):
    """The mounts a Linux task can have (Swarm's ``npipe`` is Windows', its ``cluster``
    volumes are not implemented)."""

    BIND = "bind"
    VOLUME = "volume"
    TMPFS = "tmpfs"


class BindOptions(Model):
    propagation: OmitEmpty[str] = ""
    non_recursive: OmitEmpty[bool] = False


class MountDriver(Model):
    name: OmitEmpty[str] = ""
    options: OmitEmpty[dict[str, str]] = Field(default_factory=dict)


class VolumeOptions(Model):
    no_copy: OmitEmpty[bool] = False
    labels: OmitEmpty[dict[str, str]] = Field(default_factory=dict)
    driver_config: MountDriver | None = None


class TmpfsOptions(Model):
    size_bytes: OmitEmpty[int] = 0
    mode: OmitEmpty[int] = 0


class Mount(Model):
    """One of ``ContainerSpec.Mounts``, in moby's ``mount.Mount`` shape: a bind mount when no
    type is given (moby's conversion). The agent hands it to the engine as it is."""

    type: ZeroIsDefault[MountType] = MountType.BIND
    source: OmitEmpty[str] = ""
    target: OmitEmpty[str] = ""
    read_only: OmitEmpty[bool] = False
    consistency: OmitEmpty[str] = ""
    bind_options: BindOptions | None = None
    volume_options: VolumeOptions | None = None
    tmpfs_options: TmpfsOptions | None = None


def _checked_mount(value: Any) -> Any:
    # A mount stays a plain dict (the agent hands it to the engine as it is), checked and
    # defaulted through Mount on the way in.
    if isinstance(value, dict):
        return Mount.model_validate(value).to_api()
    return value


MountSpec = Annotated[dict[str, Any], BeforeValidator(_checked_mount)]


class Isolation(StrEnum):
    """A container's isolation: Linux has only the default one."""

    DEFAULT = "default"


class HealthConfig(Model):
    """A container's healthcheck, as the Engine API's ``HealthConfig``: durations in
    nanoseconds, 0 for the image's (or the engine's) default. ``Test`` is ``["NONE"]`` to turn
    off the image's ``HEALTHCHECK`` (``--no-healthcheck``), ``["CMD", ...]`` or
    ``["CMD-SHELL", "..."]``; empty inherits the image's."""

    test: ZeroIsDefault[list[str] | None] = None
    # 0 is "not set", and not set is left out, as Go's omitempty does.
    interval: ZeroIsDefault[int | None] = None
    timeout: ZeroIsDefault[int | None] = None
    retries: ZeroIsDefault[int | None] = None
    start_period: ZeroIsDefault[int | None] = None
    start_interval: ZeroIsDefault[int | None] = None


class DNSConfig(Model):
    """The container's resolv.conf, as ``--dns``, ``--dns-search`` and ``--dns-option``."""

    nameservers: ZeroIsDefault[list[str] | None] = None
    search: ZeroIsDefault[list[str] | None] = None
    options: ZeroIsDefault[list[str] | None] = None


class Ulimit(Model):
    name: str
    soft: int
    hard: int


class ContainerSpec(Model):
    """Every field is left out when empty, as in moby's type, but for the pointers (``Init``,
    ``StopGracePeriod``, ``Healthcheck``, ``DNSConfig``: written when set, even to a zero value)
    and ``Isolation``, which moby's conversion always fills in."""

    image: OmitEmpty[str] = ""
    labels: OmitEmpty[dict[str, str]] = Field(default_factory=dict)
    command: ZeroIsDefault[list[str] | None] = None
    args: ZeroIsDefault[list[str] | None] = None
    hostname: ZeroIsDefault[str | None] = None
    env: ZeroIsDefault[list[str] | None] = None
    dir: ZeroIsDefault[str | None] = None
    user: ZeroIsDefault[str | None] = None
    tty: ZeroIsDefault[bool | None] = None
    stop_signal: ZeroIsDefault[str | None] = None
    stop_grace_period: int | None = None
    mounts: ZeroIsDefault[list[MountSpec] | None] = None
    init: bool | None = None
    secrets: ZeroIsDefault[list[SecretReference] | None] = None
    configs: ZeroIsDefault[list[ConfigReference] | None] = None
    isolation: ZeroIsDefault[Isolation] = Isolation.DEFAULT
    # The task's container is created with it; the agent keeps the task STARTING until it is
    # healthy (docs/agent.md).
    healthcheck: HealthConfig | None = None
    groups: ZeroIsDefault[list[str] | None] = None
    open_stdin: ZeroIsDefault[bool | None] = None
    read_only: ZeroIsDefault[bool | None] = None
    hosts: ZeroIsDefault[list[str] | None] = None
    dns_config: DNSConfig | None = None
    oom_score_adj: ZeroIsDefault[int | None] = None
    sysctls: ZeroIsDefault[dict[str, str] | None] = None
    capability_add: ZeroIsDefault[list[str] | None] = None
    capability_drop: ZeroIsDefault[list[str] | None] = None
    ulimits: ZeroIsDefault[list[Ulimit] | None] = None


class ResourceSpec(Model):
    """A task's limits (``Pids`` is a limit's only) or reservations (``GenericResources`` is a
    reservation's only), as the Engine API's ``Limit`` and ``ResourceObject``."""

    nano_cpus: OmitEmpty[int] = 0
    memory_bytes: OmitEmpty[int] = 0
    pids: ZeroIsDefault[int | None] = None
    generic_resources: ZeroIsDefault[list[GenericResource] | None] = None


class ResourceRequirements(Model):
    limits: ResourceSpec | None = None
    reservations: ResourceSpec | None = None
    swap_bytes: int | None = None
    memory_swappiness: int | None = None


class RestartCondition(StrEnum):
    NONE = "none"
    ON_FAILURE = "on-failure"
    ANY = "any"


class RestartPolicy(Model):
    """``Delay`` and ``Window`` are read with Swarm's defaults, and written only when set (nil
    pointers in Swarm, where the orchestrator applies the same defaults)."""

    condition: ZeroIsDefault[RestartCondition] = RestartCondition.ANY
    delay: OmitUnset[int] = Unset(5 * SECOND_NS)
    max_attempts: int = 0
    window: OmitUnset[int] = Unset(0)


class PlacementPreference(Model):
    spread: dict[str, str] | None = None


class Placement(Model):
    constraints: OmitEmpty[list[str]] = Field(default_factory=list)
    preferences: OmitEmpty[list[PlacementPreference]] = Field(default_factory=list)
    max_replicas: OmitEmpty[int] = 0


class NetworkAttachmentConfig(Model):
    target: str
    aliases: ZeroIsDefault[list[str] | None] = None


class NetworkAttachmentSpec(Model):
    """What an attachment task stands for: a plain container (``docker run --network``) on
    an attachable overlay network. The manager makes such tasks itself; no service has one."""

    container_id: str


class TaskRuntime(StrEnum):
    """What a task runs: containers only (Swarm's plugins and attachments are not services
    swarmlet makes)."""

    CONTAINER = "container"


class TaskSpec(Model):
    container_spec: ContainerSpec = Field(default_factory=ContainerSpec)
    resources: ResourceRequirements | None = None
    restart_policy: RestartPolicy | None = None
    placement: Placement | None = None
    force_update: int = 0
    networks: ZeroIsDefault[list[NetworkAttachmentConfig] | None] = None
    runtime: ZeroIsDefault[TaskRuntime] = TaskRuntime.CONTAINER
    network_attachment_spec: NetworkAttachmentSpec | None = None
    # The task's log driver (``--log-driver``, ``--log-opt``).
    log_driver: Driver | None = None


class ReplicatedMode(Model):
    replicas: int = 1


class GlobalMode(Model):
    pass


class ReplicatedJob(Model):
    """A job run to TotalCompletions successful tasks, at most MaxConcurrent at a time. Absent
    fields take moby's defaults (daemon/cluster/convert): MaxConcurrent 1, TotalCompletions
    MaxConcurrent."""

    max_concurrent: int = 1
    total_completions: int = 1

    @model_validator(mode="after")
    def _moby_defaults(self) -> Self:
        # After the keys are matched (base.py): TotalCompletions not given is MaxConcurrent.
        if "total_completions" not in self.model_fields_set:
            object.__setattr__(self, "total_completions", self.max_concurrent)
            self.model_fields_set.add("total_completions")
        return self


class GlobalJob(Model):
    """A job run once to completion on every eligible node."""


class ModeKind(StrEnum):
    """A service's mode, by the names of ``service ls``'s ``mode`` filter."""

    REPLICATED = "replicated"
    GLOBAL = "global"
    REPLICATED_JOB = "replicated-job"
    GLOBAL_JOB = "global-job"


class ServiceMode(Model):
    replicated: ReplicatedMode | None = None
    global_: GlobalMode | None = Field(default=None, alias="Global")
    replicated_job: ReplicatedJob | None = None
    global_job: GlobalJob | None = None

    @property
    def is_global(self) -> bool:
        """One task per node: a global service or a global job."""
        return self.global_ is not None or self.global_job is not None

    @property
    def is_job(self) -> bool:
        """Tasks run to completion (desired state COMPLETE) rather than forever."""
        return self.replicated_job is not None or self.global_job is not None

    @property
    def kind(self) -> ModeKind:
        if self.replicated_job is not None:
            return ModeKind.REPLICATED_JOB
        if self.global_job is not None:
            return ModeKind.GLOBAL_JOB
        return ModeKind.GLOBAL if self.global_ is not None else ModeKind.REPLICATED


class FailureAction(StrEnum):
    CONTINUE = "continue"
    PAUSE = "pause"
    ROLLBACK = "rollback"


class UpdateOrder(StrEnum):
    STOP_FIRST = "stop-first"
    START_FIRST = "start-first"


class UpdateConfig(Model):
    """``Monitor`` is read with Swarm's default, and written only when set (0 is not set: a nil
    pointer in Swarm); ``Parallelism``, ``MaxFailureRatio`` and ``Order`` are always written."""

    parallelism: int = 1
    delay: OmitEmpty[int] = 0
    failure_action: ZeroIsDefault[FailureAction] = FailureAction.PAUSE
    monitor: OmitUnset[ZeroIsDefault[int]] = Unset(5 * SECOND_NS)
    max_failure_ratio: float = 0
    order: ZeroIsDefault[UpdateOrder] = UpdateOrder.STOP_FIRST


class PortProtocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


class PublishMode(StrEnum):
    INGRESS = "ingress"
    HOST = "host"


class PortConfig(Model):
    name: ZeroIsDefault[str | None] = None
    protocol: ZeroIsDefault[PortProtocol] = PortProtocol.TCP
    target_port: OmitEmpty[int] = 0
    published_port: ZeroIsDefault[int | None] = None
    publish_mode: ZeroIsDefault[PublishMode] = PublishMode.INGRESS


class ResolutionMode(StrEnum):
    VIP = "vip"
    DNSRR = "dnsrr"


class EndpointSpec(Model):
    mode: ZeroIsDefault[ResolutionMode] = ResolutionMode.VIP
    ports: ZeroIsDefault[list[PortConfig] | None] = None

    def host_mode_ports(self) -> list[PortConfig]:
        """The ports published in ``mode=host``: bound on each task's own host."""
        return [port for port in self.ports or () if port.publish_mode == PublishMode.HOST]


class ServiceSpec(Model):
    name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    task_template: TaskSpec = Field(default_factory=TaskSpec)
    mode: ServiceMode = Field(default_factory=lambda: ServiceMode(replicated=ReplicatedMode()))
    update_config: UpdateConfig | None = None
    rollback_config: UpdateConfig | None = None
    endpoint_spec: EndpointSpec | None = None
    networks: ZeroIsDefault[list[NetworkAttachmentConfig] | None] = None


class EndpointVirtualIP(Model):
    network_id: str = Field(alias="NetworkID")
    addr: str


class Endpoint(Model):
    spec: EndpointSpec = Field(default_factory=EndpointSpec)
    # The published ports as allocated (a port published without a number gets one here).
    ports: ZeroIsDefault[list[PortConfig] | None] = None
    virtual_ips: ZeroIsDefault[list[EndpointVirtualIP] | None] = None


class UpdateState(StrEnum):
    UPDATING = "updating"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_PAUSED = "rollback_paused"
    ROLLBACK_COMPLETED = "rollback_completed"


class UpdateStatus(Model):
    state: UpdateState
    started_at: str | None = None
    completed_at: str | None = None
    message: OmitEmpty[str] = ""


class ServiceStatus(Model):
    running_tasks: int = 0
    desired_tasks: int = 0
    completed_tasks: int = 0


class JobStatus(Model):
    """Which run of a job is current (``JobIteration``, bumped by every update of the service,
    copied by its tasks) and when it started."""

    job_iteration: Version = Field(default_factory=Version)
    last_execution: datetime | None = None


class Service(StoredObject):
    _not_in_api = {"spec_version"}

    spec: ServiceSpec
    previous_spec: ServiceSpec | None = None
    # Not in the Engine API: bumped on every spec change and copied by the service's tasks,
    # so "is this task up to date" is one comparison (Swarm keeps the same, internally).
    spec_version: Version = Field(default_factory=Version)
    endpoint: Endpoint | None = None
    update_status: UpdateStatus | None = None
    service_status: ServiceStatus | None = None
    # A job's run: set at create, its iteration bumped by every update (docs/orchestrator.md).
    job_status: JobStatus | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_global(self) -> bool:
        return self.spec.mode.is_global

    @property
    def replicas(self) -> int:
        replicated = self.spec.mode.replicated
        return replicated.replicas if replicated is not None else 0
