"""What a transaction does and what a watcher sees."""

from __future__ import annotations

from collections import deque
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


@dataclass(frozen=True, slots=True)
class Event:
    """A committed change. ``obj`` is the object as written (for a delete: as it was)."""

    action: Action
    obj: StoredObject
    revision: int


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
