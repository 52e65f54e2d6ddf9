"""What the API needs from the daemon it runs in: the node's swarm state, the swarm verbs, and
the cluster backend that answers the swarm's requests (``backend.py``).

The daemon implements this; the API handlers call it and never reach into the daemon.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from swarmlet.models import DEFAULT_SUBNET_SIZE
from swarmlet.net.names import VXLAN_PORT

if TYPE_CHECKING:
    from swarmlet.api.backend import ClusterBackend


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
    # Where overlay subnets come from (none given: 10.0.0.0/8), their size, and the VXLAN
    # port (checked by the caller).
    default_addr_pool: tuple[str, ...] = ()
    subnet_size: int = DEFAULT_SUBNET_SIZE
    data_path_port: int = VXLAN_PORT
    # The address for VXLAN traffic, as given (an IP or an interface; '' the advertise one).
    data_path_addr: str = ""


@dataclass(frozen=True)
class JoinRequest:
    remote_addrs: tuple[str, ...]
    join_token: str
    listen_addr: str = "0.0.0.0:2377"
    advertise_addr: str = ""
    data_path_addr: str = ""


@dataclass(frozen=True)
class LeaderRoute:
    """How a manager that does not hold the store (a follower) reaches the leader, which does:
    the managers' addresses (host:2377) to try in turn, and a TLS context that trusts the
    swarm's roots only and presents this node's manager certificate."""

    addrs: tuple[str, ...]
    tls: ssl.SSLContext


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
    def cluster(self) -> ClusterBackend:
        """Who answers the swarm's requests now: this node's store (an active manager that
        holds it), the leader (a manager that does not: a follower), or no one (a worker, a
        locked node, a node outside a swarm). The daemon sets it whenever the node's role or
        state changes."""
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

    # Autolock: the store's key file (swarmlet.manager.store.encryption) lives with the daemon.

    async def unlock(self, key: str) -> None:
        """Unlock this locked manager with the operator's unlock key, as typed (``SWMKEY-1-…``):
        open the key file, open the store, and become an active manager.

        Called only when ``state`` is LOCKED (the API answers the other states itself).
        Raises InvalidSpec("invalid key string") for a malformed key (``parse_unlock_key``)
        and Unauthorized("swarm could not be unlocked: invalid key provided") for a key that
        does not open the key file (``read_dek``); the node stays locked.
        """
        ...

    def unlock_key(self) -> str:
        """The current unlock key, human-readable (``SWMKEY-1-…``); '' when autolock is off.

        Asked only of an active manager (one that is locked does not know it).
        """
        ...

    async def set_autolock(self, enabled: bool, rotate: bool) -> str:
        """Make the key file match the swarm's ``EncryptionConfig.AutoLockManagers``, after an
        update of the swarm's spec has been committed; returns the unlock key now in force.

        ``enabled`` and autolock off: a new unlock key seals the key file. ``enabled`` and
        ``rotate``: a new unlock key replaces the current one. ``enabled``, on, not
        ``rotate``: nothing changes. Not ``enabled``: the key file is written plain and the
        key forgotten (``rotate`` is ignored, as Swarm ignores it without autolock). The DEK,
        and so the store, never changes. Asked only of an active manager.
        """
        ...
