"""What the API needs from the daemon it runs in: the node's swarm state and the swarm verbs.

The daemon implements this; the API handlers call it and never reach into the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from swarmlet.manager.store import Store


class LocalNodeState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    ACTIVE = "active"
    ERROR = "error"
    LOCKED = "locked"


@dataclass(frozen=True)
class InitRequest:
    listen_addr: str = "0.0.0.0:2377"
    advertise_addr: str = ""
    force_new_cluster: bool = False
    # The Swarm spec given at init (the Engine API's SwarmSpec JSON), validated by the caller.
    spec: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class JoinRequest:
    remote_addrs: tuple[str, ...]
    join_token: str
    listen_addr: str = "0.0.0.0:2377"
    advertise_addr: str = ""


class SwarmControl(Protocol):
    @property
    def state(self) -> LocalNodeState: ...

    @property
    def node_id(self) -> str:
        """This node's ID in the swarm ('' when not in one)."""
        ...

    @property
    def node_addr(self) -> str:
        """The address this node advertises ('' when not in a swarm)."""
        ...

    @property
    def store(self) -> Store | None:
        """The cluster store when this node is an active manager, else None."""
        ...

    @property
    def manager_addrs(self) -> list[str]:
        """host:port of the managers this node knows (RemoteManagers in /info)."""
        ...

    @property
    def engine_socket(self) -> str:
        """The local engine's unix socket path, for requests the API passes through."""
        ...

    async def init(self, request: InitRequest) -> str:
        """Make this node the first manager of a new swarm; returns the node ID.

        Raises Unavailable (503) when already part of a swarm.
        """
        ...

    async def join(self, request: JoinRequest) -> None:
        """Join an existing swarm. Raises InvalidSpec for a bad token, Unavailable if already
        in a swarm or the manager cannot be reached."""
        ...

    async def leave(self, force: bool) -> None:
        """Leave the swarm. Raises Unavailable when not in one."""
        ...
