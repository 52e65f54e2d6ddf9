"""The cluster store: the contract in ARCHITECTURE.md, over a memory, SQLite or etcd backend.

The package gives the contract and the memory backend. The durable backends
(``swarmlet.manager.store.sqlite``, ``swarmlet.manager.store.etcd``) and the store's keys
(``swarmlet.manager.store.encryption``) are imported from their modules, on a manager only:
the API, which every node serves, imports this package.
"""

from swarmlet.manager.store.backend import (
    Backend,
    Change,
    Compacted,
    LocalBackend,
    MemoryBackend,
    RemoteBackend,
    Stale,
    Write,
)
from swarmlet.manager.store.events import Action, Event, Op, OwnCommits
from swarmlet.manager.store.store import Snapshot, Store, Watch
from swarmlet.manager.store.tx import Commit, Tx

__all__ = [
    "Action",
    "Backend",
    "Change",
    "Commit",
    "Compacted",
    "Event",
    "LocalBackend",
    "MemoryBackend",
    "Op",
    "OwnCommits",
    "RemoteBackend",
    "Snapshot",
    "Stale",
    "Store",
    "Tx",
    "Watch",
    "Write",
]
