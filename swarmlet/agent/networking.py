"""What a task controller needs from the host's network data plane (``swarmlet.agent.network``
implements it; tasks without networks never call it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from swarmlet.models import Task


@dataclass(frozen=True)
class ContainerNetworking:
    """What the task's container is created with: ``host_config`` goes into its HostConfig
    (its first network, its resolver), ``networking_config`` is the request's
    NetworkingConfig (its address there)."""

    host_config: dict[str, Any]
    networking_config: dict[str, Any]


class TaskNetworking(Protocol):
    async def attach(self, task: Task) -> ContainerNetworking:
        """Wait until the host can take the task on each of its networks, and say how its
        container joins them; the engine plumbs them as the container starts, before the
        task's process runs."""
        ...

    async def connect(self, task: Task, container_id: str) -> None:
        """The container is created: join it to the task's other networks (the engine's
        create request takes only one)."""
        ...

    async def detach(self, task: Task) -> None:
        """The task's process is gone: forget its addresses (idempotent)."""
        ...
