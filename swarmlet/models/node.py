"""Nodes, in the shape of the Engine API's ``Node``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from swarmlet.models.base import Model, StoredObject
from swarmlet.models.network import NodeAttachment


class NodeRole(StrEnum):
    WORKER = "worker"
    MANAGER = "manager"


class NodeAvailability(StrEnum):
    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


class NodeState(StrEnum):
    UNKNOWN = "unknown"
    DOWN = "down"
    READY = "ready"
    DISCONNECTED = "disconnected"


class NodeSpec(Model):
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    role: NodeRole = NodeRole.WORKER
    availability: NodeAvailability = NodeAvailability.ACTIVE


class Platform(Model):
    architecture: str = ""
    os: str = ""


class Resources(Model):
    nano_cpus: int = 0
    memory_bytes: int = 0


class EngineDescription(Model):
    engine_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class NodeDescription(Model):
    hostname: str = ""
    platform: Platform = Field(default_factory=Platform)
    resources: Resources = Field(default_factory=Resources)
    engine: EngineDescription = Field(default_factory=EngineDescription)


class NodeStatus(Model):
    state: NodeState = NodeState.UNKNOWN
    message: str | None = None
    addr: str = ""


class ManagerStatus(Model):
    leader: bool = False
    reachability: str = "reachable"
    addr: str = ""


class Node(StoredObject):
    spec: NodeSpec = Field(default_factory=NodeSpec)
    description: NodeDescription = Field(default_factory=NodeDescription)
    status: NodeStatus = Field(default_factory=NodeStatus)
    manager_status: ManagerStatus | None = None
    # Not in the Engine API (Swarm keeps them internally): the node's own address on each
    # overlay network, written by the allocator.
    attachments: list[NodeAttachment] = Field(default_factory=list)

    @property
    def hostname(self) -> str:
        return self.description.hostname

    def is_available(self) -> bool:
        """Ready and active: the node may be given new tasks."""
        return (
            self.status.state == NodeState.READY
            and self.spec.availability == NodeAvailability.ACTIVE
        )
