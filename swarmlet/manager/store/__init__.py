"""The cluster store: the contract in ARCHITECTURE.md, over a memory or SQLite backend.

The package gives the contract and the memory backend. The durable backend
(``swarmlet.manager.store.sqlite``) and the store's keys (``swarmlet.manager.store.encryption``)
are imported from their modules, on a manager only: the API, which every node serves, imports
this package.
"""

from swarmlet.manager.store.backend import Backend, MemoryBackend
from swarmlet.manager.store.events import Action, Event, Op, OwnCommits
from swarmlet.manager.store.store import Compacted, Snapshot, Store, Watch

__all__ = [
    "Action",
    "Backend",
    "Compacted",
    "Event",
    "MemoryBackend",
    "Op",
    "OwnCommits",
    "Snapshot",
    "Store",
    "Watch",
]
