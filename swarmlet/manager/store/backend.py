"""Where committed objects are kept: nowhere (memory) or an SQLite file (durable, in
``swarmlet.manager.store.sqlite``).

The store keeps every object in memory and indexes it there; a backend only makes commits
survive a restart. Every backend keeps the store's contract: ``write`` is atomic and durable
when it returns, and ``load`` gives back exactly what was committed, with the revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from swarmlet.manager.store.events import Event


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
