"""Where committed objects are kept: nowhere (memory) or an SQLite file (durable).

The store keeps every object in memory and indexes it there; a backend only makes commits
survive a restart. Every backend keeps the store's contract: ``write`` is atomic and durable
when it returns, and ``load`` gives back exactly what was committed, with the revision.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from swarmlet.manager.store.events import Action, Event


class Backend(Protocol):
    def load(self) -> tuple[int, list[tuple[str, str]]]:
        """The last revision, and every object as (kind, JSON)."""
        ...

    def write(self, revision: int, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class MemoryBackend:
    """Keeps nothing: the test double of the durable store."""

    def load(self) -> tuple[int, list[tuple[str, str]]]:
        return 0, []

    def write(self, revision: int, events: Sequence[Event]) -> None:
        pass

    def close(self) -> None:
        pass


class SqliteBackend:
    """One table of objects and the global revision, in an SQLite file in WAL mode.

    ``synchronous=FULL`` makes each commit durable when ``write`` returns.
    """

    def __init__(self, path: Path) -> None:
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

    def load(self) -> tuple[int, list[tuple[str, str]]]:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        objects = self._db.execute("SELECT kind, data FROM objects ORDER BY revision").fetchall()
        return (row[0] if row else 0), [(kind, data) for kind, data in objects]

    def write(self, revision: int, events: Sequence[Event]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                kind = type(event.obj).__name__
                if event.action is Action.DELETE:
                    db.execute(
                        "DELETE FROM objects WHERE kind = ? AND id = ?", (kind, event.obj.id)
                    )
                else:
                    data = json.dumps(event.obj.to_api(), separators=(",", ":"))
                    db.execute(
                        "INSERT OR REPLACE INTO objects (kind, id, revision, data)"
                        " VALUES (?, ?, ?, ?)",
                        (kind, event.obj.id, revision, data),
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
