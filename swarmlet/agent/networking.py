"""What a task controller needs from the host's network data plane (``swarmlet.agent.network``
implements it; tasks without networks never call it)."""

from __future__ import annotations

from typing import Any, Protocol

from swarmlet.models import Task


class TaskNetworking(Protocol):
    async def attach(self, task: Task) -> dict[str, Any]:
        """Make the task's network namespace ready (its addresses, routes and resolver) before
        its process starts; returns what to add to the task container's HostConfig (joining
        that namespace)."""
        ...

    async def detach(self, task: Task) -> None:
        """Release the task's namespace and its host-side interfaces (idempotent)."""
        ...
