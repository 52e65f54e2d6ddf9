"""What a transaction does and what a watcher sees."""

from __future__ import annotations

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
