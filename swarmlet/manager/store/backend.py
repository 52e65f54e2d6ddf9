"""Where committed objects are kept, and who numbers the revisions.

Two kinds of backend stand behind the store:

- A **local** backend (``MemoryBackend``; ``SqliteBackend`` in ``swarmlet.manager.store.sqlite``)
  belongs to this one process. The store is the authority: it checks each transaction against
  its objects, numbers the revision, and hands the backend the events to keep. ``write`` is
  atomic and durable when it returns, runs its I/O off the event loop, and ``load`` gives back
  exactly what was committed, with the revision.
- A **remote** backend (etcd, ``swarmlet.manager.store.etcd``) is shared by several managers.
  It is the authority: the store's objects are a cache that its ``follow`` feeds, every
  manager's commits included; ``commit`` writes only if no object the transaction read has
  moved on, and the revision is the backend's. A write of the leader's controllers is fenced
  on its term (``Store.fenced``): it lands only while that term lasts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from swarmlet.errors import Unavailable
from swarmlet.manager.store.events import Action, Event, Unread
from swarmlet.models import StoredObject


class LocalBackend(Protocol):
    async def load(self) -> tuple[int, list[tuple[str, str]]]:
        """The last revision, and every object as (kind, JSON)."""
        ...

    async def write(self, revision: int, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Write:
    """One object a remote transaction writes: ``obj`` as it is to be stored, the version the
    store holds now (0: it must not exist), and its unique name before and after (None for
    kinds without one), which the backend claims and releases in the same transaction."""

    action: Action
    obj: StoredObject
    expected: int
    name_before: str | None
    name_after: str | None


class Compacted(Exception):
    """A watch asked to start from a revision older than the kept history: the store's own
    (``Store.watch``), or the remote backend's (``follow``, after etcd compacted it)."""


class Stale(Exception):
    """A remote transaction found an object moved on since the store's cache read it: the
    cache is behind ``revision``, and the transaction runs again once it has caught up."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"the store's cache is behind revision {revision}")
        self.revision = revision


class TermEnded(Unavailable):
    """A fenced write found the leader's term over (its leader key gone, or made again by
    another manager's term): nothing was written, and nothing is tried again."""


@dataclass(frozen=True, slots=True)
class Change:
    """A change the remote backend saw: the object as stored (a delete: its last state, or
    None when the backend no longer has it) with ``Version.Index`` set to its revision. A
    task another manager wrote may come ``Unread``: parsed when it is first asked for."""

    action: Action
    kind: str
    object_id: str
    obj: StoredObject | Unread | None


class RemoteBackend(Protocol):
    async def load(self) -> tuple[int, list[StoredObject]]:
        """The backend's revision and every object at it, versions set."""
        ...

    def follow(self, from_revision: int) -> AsyncIterator[tuple[int, list[Change]]]:
        """Every revision after ``from_revision`` that changed objects, with its changes;
        ``Compacted`` when the backend no longer has them (the store loads again)."""
        ...

    async def commit(self, writes: Sequence[Write], fence: int = 0) -> int:
        """Write all or nothing, returning the revision; ``Stale`` when an object (or a
        name) is not as the store's cache had it. ``fence``: the create revision of the
        leader key of the term the write belongs to (0: none); the write lands only while
        the key is still that one, and raises ``TermEnded`` otherwise."""
        ...

    async def current_revision(self) -> int:
        """The backend's revision now (a linearizable read)."""
        ...

    def close(self) -> None: ...


Backend = LocalBackend | RemoteBackend


class MemoryBackend:
    """Keeps nothing: the test double of the durable store."""

    async def load(self) -> tuple[int, list[tuple[str, str]]]:
        return 0, []

    async def write(self, revision: int, events: Sequence[Event]) -> None:
        pass

    def close(self) -> None:
        pass
