"""The durable backend: the store's objects in an SQLite file, sealed with the store's key.

A module of its own, imported where a manager opens its store: the store's package is also
loaded by every node that serves the Engine API, and neither SQLite nor the cipher's library
(``cryptography``) belongs in a worker's memory.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from swarmlet.manager.store.encryption import Cipher, open_object, seal_object
from swarmlet.manager.store.events import Action, Event
from swarmlet.models import StoredObject


class SqliteBackend:
    """One table of objects and the global revision, in an SQLite file in WAL mode.

    ``synchronous=FULL`` makes each commit durable when ``write`` returns; ``load`` and
    ``write`` run in a thread, off the event loop (the store writes one transaction at a
    time). With a ``cipher`` each object's JSON is stored sealed (a BLOB in ``data``, bound to
    its kind and ID, so a row moved to another object does not open), and neither the file nor
    its WAL holds any object in plain text; kinds, IDs and the revision stay readable.
    """

    def __init__(self, path: Path, cipher: Cipher | None = None) -> None:
        self._cipher = cipher
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects ("
            " kind TEXT NOT NULL, id TEXT NOT NULL, revision INTEGER NOT NULL,"
            " data TEXT NOT NULL, PRIMARY KEY (kind, id))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")

    async def load(self) -> tuple[int, list[tuple[str, str]]]:
        return await asyncio.to_thread(self._load)

    def _load(self) -> tuple[int, list[tuple[str, str]]]:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        objects = self._db.execute(
            "SELECT kind, id, data FROM objects ORDER BY revision"
        ).fetchall()
        return (row[0] if row else 0), [
            (kind, self._open(kind, object_id, data)) for kind, object_id, data in objects
        ]

    def _row(self, kind: str, object_id: str, obj: StoredObject) -> str | bytes:
        # The API's JSON (to_api's), written by pydantic without a dict between.
        data = obj.model_dump_json(by_alias=True, exclude_none=True)
        return self._seal(kind, object_id, data)

    def _seal(self, kind: str, object_id: str, data: str) -> str | bytes:
        return seal_object(self._cipher, kind, object_id, data)

    def _open(self, kind: str, object_id: str, data: str | bytes) -> str:
        return open_object(self._cipher, kind, object_id, data)

    async def write(self, revision: int, events: Sequence[Event]) -> None:
        await asyncio.to_thread(self._write, revision, events)

    def _write(self, revision: int, events: Sequence[Event]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Only an object's last event counts (a commit may create and then delete it):
            # rows then go in two statements, deletes and writes, whatever their order.
            last = {(type(event.obj).__name__, event.obj.id): event for event in events}
            db.executemany(
                "DELETE FROM objects WHERE kind = ? AND id = ?",
                [key for key, event in last.items() if event.action is Action.DELETE],
            )
            # Rows made one at a time as SQLite takes them: a list of 10,000 rows of JSON
            # would stay in the heap as fragments long after the commit.
            db.executemany(
                "INSERT OR REPLACE INTO objects (kind, id, revision, data) VALUES (?, ?, ?, ?)",
                (
                    (kind, object_id, revision, self._row(kind, object_id, event.obj))
                    for (kind, object_id), event in last.items()
                    if event.action is not Action.DELETE
                ),
            )
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', ?)", (revision,)
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
