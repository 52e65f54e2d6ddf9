"""The cluster store: the contract in ARCHITECTURE.md, over a memory or SQLite backend."""

from swarmlet.manager.store.backend import Backend, MemoryBackend, SqliteBackend
from swarmlet.manager.store.encryption import (
    INVALID_UNLOCK_KEY,
    KEY_FILE,
    Cipher,
    create_key_file,
    key_file_sealed,
    new_unlock_key,
    parse_unlock_key,
    read_dek,
    rekey_key_file,
    write_key_file,
)
from swarmlet.manager.store.events import Action, Event, Op, OwnCommits
from swarmlet.manager.store.store import Compacted, Snapshot, Store, Watch

__all__ = [
    "INVALID_UNLOCK_KEY",
    "KEY_FILE",
    "Action",
    "Backend",
    "Cipher",
    "Compacted",
    "Event",
    "MemoryBackend",
    "Op",
    "OwnCommits",
    "Snapshot",
    "SqliteBackend",
    "Store",
    "Watch",
    "create_key_file",
    "key_file_sealed",
    "new_unlock_key",
    "parse_unlock_key",
    "read_dek",
    "rekey_key_file",
    "write_key_file",
]
