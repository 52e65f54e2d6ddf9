"""Plain objects for the scheduler's tests: nodes and tasks with only what matters set."""

from __future__ import annotations

from collections.abc import Sequence

from swarmlet.models import (
    Node,
    NodeAvailability,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
    Placement,
    Platform,
    ResourceRequirements,
    Resources,
    ResourceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)
from swarmlet.models.node import EngineDescription
from swarmlet.models.service import PlacementPreference

CPU = 1_000_000_000
GB = 1 << 30


def node(
    node_id: str = "node1",
    *,
    hostname: str | None = None,
    state: NodeState = NodeState.READY,
    availability: NodeAvailability = NodeAvailability.ACTIVE,
    role: NodeRole = NodeRole.WORKER,
    labels: dict[str, str] | None = None,
    engine_labels: dict[str, str] | None = None,
    addr: str = "10.0.0.1",
    os: str = "linux",
    arch: str = "x86_64",
    cpus: int = 4 * CPU,
    memory: int = 8 * GB,
) -> Node:
    return Node(
        id=node_id,
        spec=NodeSpec(labels=labels or {}, role=role, availability=availability),
        description=NodeDescription(
            hostname=hostname if hostname is not None else node_id,
            platform=Platform(architecture=arch, os=os),
            resources=Resources(nano_cpus=cpus, memory_bytes=memory),
            engine=EngineDescription(labels=engine_labels or {}),
        ),
        status=NodeStatus(state=state, addr=addr),
    )


def spec(
    *,
    cpus: int = 0,
    memory: int = 0,
    constraints: Sequence[str] = (),
    max_replicas: int = 0,
    spread: Sequence[str] = (),
) -> TaskSpec:
    resources = None
    if cpus or memory:
        reservation = ResourceSpec(nano_cpus=cpus, memory_bytes=memory)
        resources = ResourceRequirements(reservations=reservation)
    placement = None
    if constraints or max_replicas or spread:
        placement = Placement(
            constraints=list(constraints),
            max_replicas=max_replicas,
            # --placement-pref spread=<descriptor>, outermost first.
            preferences=[
                PlacementPreference(spread={"SpreadDescriptor": descriptor})
                for descriptor in spread
            ],
        )
    return TaskSpec(resources=resources, placement=placement)


def task(
    task_id: str,
    service_id: str = "svc",
    *,
    node_id: str | None = None,
    state: TaskState = TaskState.PENDING,
    desired: TaskState = TaskState.RUNNING,
    task_spec: TaskSpec | None = None,
    spec_version: int = 1,
    slot: int | None = None,
) -> Task:
    return Task(
        id=task_id,
        service_id=service_id,
        spec=task_spec or TaskSpec(),
        spec_version=Version(index=spec_version),
        slot=slot,
        node_id=node_id,
        status=TaskStatus(state=state, message="pending task scheduling"),
        desired_state=desired,
    )


def tasks(count: int, service_id: str = "svc", **kwargs: object) -> list[Task]:
    return [
        task(f"{service_id}-t{i}", service_id, slot=i + 1, **kwargs)  # type: ignore[arg-type]
        for i in range(count)
    ]
