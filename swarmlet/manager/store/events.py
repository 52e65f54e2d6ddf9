"""What a transaction does and what a watcher sees."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from swarmlet.models import StoredObject


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Op:
    """One write of a transaction. ``obj`` carries the version it was read at (for update and
    delete), which the store checks for optimistic concurrency."""

    action: Action
    obj: StoredObject

    @classmethod
    def create(cls, obj: StoredObject) -> Op:
        return cls(Action.CREATE, obj)

    @classmethod
    def update(cls, obj: StoredObject) -> Op:
        return cls(Action.UPDATE, obj)

    @classmethod
    def delete(cls, obj: StoredObject) -> Op:
        return cls(Action.DELETE, obj)


class Unread:
    """An object a shared backend (etcd) has as another manager wrote it, not parsed yet: it
    is read the first time it is asked for, once. A manager that does not lead is sent every
    version of every task the leader writes, most of them replaced before anyone asks for
    them, and parsing each one was most of such a manager's work (docs/store.md, "Read on
    demand")."""

    __slots__ = ("_obj", "_read", "id", "index", "kind")

    def __init__(
        self,
        kind: type[StoredObject],
        object_id: str,
        index: int,
        read: Callable[[], StoredObject],
    ) -> None:
        self.kind = kind
        self.id = object_id
        self.index = index  # its Version.Index
        self._read: Callable[[], StoredObject] | None = read
        self._obj: StoredObject | None = None

    def read(self) -> StoredObject:
        """The object, parsed the first time (an error parsing it is raised each time)."""
        if self._obj is None:
            assert self._read is not None
            self._obj = self._read()
            self._read = None  # what it was read from is no longer needed
        return self._obj

    def __repr__(self) -> str:
        return f"Unread({self.kind.__name__} {self.id} at {self.index})"


class Event:
    """A committed change. ``obj`` is the object as written (for a delete: as it was). One
    that another manager wrote may be parsed only when ``obj`` is first asked for: ``kind``
    and ``object_id`` tell what changed without parsing it."""

    __slots__ = ("_subject", "action", "revision")

    def __init__(self, action: Action, obj: StoredObject | Unread, revision: int) -> None:
        self.action = action
        self.revision = revision
        self._subject = obj

    @property
    def obj(self) -> StoredObject:
        subject = self._subject
        return subject.read() if isinstance(subject, Unread) else subject

    @property
    def subject(self) -> StoredObject | Unread:
        """The object, or what it is read from: for the store, which keeps it unread."""
        return self._subject

    @property
    def kind(self) -> type[StoredObject]:
        subject = self._subject
        return subject.kind if isinstance(subject, Unread) else type(subject)

    @property
    def object_id(self) -> str:
        return self._subject.id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.action, self.obj, self.revision) == (other.action, other.obj, other.revision)

    def __hash__(self) -> int:
        return hash((self.action, self.kind, self.object_id, self.revision))

    def __repr__(self) -> str:
        return f"Event({self.action.value}, {self._subject!r}, {self.revision})"


class OwnCommits:
    """The revisions of the commits a component made itself, until its watch has passed them:
    to tell its own writes coming back as events from everyone else's.

    Commits are numbered in the order they are made and a watch yields events in revision
    order, so the revisions wait in a queue and each is dropped once an event beyond it has
    been seen.
    """

    def __init__(self) -> None:
        self._pending: deque[int] = deque()

    def add(self, revision: int) -> None:
        """Note a commit just made (``store.revision`` right after it)."""
        self._pending.append(revision)

    def made(self, revision: int) -> bool:
        """Whether an event of this revision is one of those commits' own."""
        pending = self._pending
        while pending and pending[0] < revision:
            pending.popleft()
        return bool(pending) and pending[0] == revision
