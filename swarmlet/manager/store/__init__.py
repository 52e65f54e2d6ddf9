"""The cluster store: the contract in ARCHITECTURE.md, over a memory or SQLite backend."""

from swarmlet.manager.store.backend import Backend, MemoryBackend, SqliteBackend
from swarmlet.manager.store.events import Action, Event, Op
from swarmlet.manager.store.store import Compacted, Snapshot, Store, Watch

__all__ = [
    "Action",
    "Backend",
    "Compacted",
    "Event",
    "MemoryBackend",
    "Op",
    "Snapshot",
    "SqliteBackend",
    "Store",
    "Watch",
]
