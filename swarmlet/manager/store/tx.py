"""A transaction: what ``Store.update``'s function reads and writes through.

Reads see the store as it is plus the transaction's own writes; writes are kept as ``Op``s
and checked when the function returns (versions, names), so a function that raises writes
nothing. The function may run more than once (the store runs it again when a networked
backend had moved on under it), so it does nothing but read and write through the
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from swarmlet.errors import NotFound
from swarmlet.manager.store.events import Action, Op
from swarmlet.models import Cluster, StoredObject, Task

if TYPE_CHECKING:
    from swarmlet.manager.store.store import Store

T = TypeVar("T", bound=StoredObject)
R = TypeVar("R")


@dataclass(frozen=True)
class Commit(Generic[R]):
    """What ``Store.update`` did: the revision it wrote at (the store's revision when the
    function wrote nothing), the objects as written (deletes: as they were) in the order of
    the writes, and the function's own result."""

    revision: int
    objects: list[StoredObject] = field(default_factory=list)
    value: R = None  # type: ignore[assignment]


class Tx:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.ops: list[Op] = []
        # The transaction's view of each object it wrote: the object, or None once deleted.
        self._written: dict[tuple[type[StoredObject], str], StoredObject | None] = {}

    # Writes

    def create(self, obj: StoredObject) -> None:
        self._add(Op.create(obj))

    def update(self, obj: StoredObject) -> None:
        """Write ``obj`` over the stored one; ``obj`` carries the version it was read at."""
        self._add(Op.update(obj))

    def delete(self, obj: StoredObject) -> None:
        self._add(Op.delete(obj))

    def write(self, ops: Iterable[Op]) -> None:
        for op in ops:
            self._add(op)

    def _add(self, op: Op) -> None:
        self.ops.append(op)
        key = (type(op.obj), op.obj.id)
        self._written[key] = None if op.action is Action.DELETE else op.obj

    # Reads: the store's objects with this transaction's writes over them.

    def find(self, kind: type[T], object_id: str) -> T | None:
        key = (kind, object_id)
        if key in self._written:
            return self._written[key]  # type: ignore[return-value]
        return self._store.find(kind, object_id)

    def get(self, kind: type[T], object_id: str) -> T:
        obj = self.find(kind, object_id)
        if obj is None:
            raise NotFound(f"{kind.__name__.lower()} {object_id} not found")
        return obj

    def all(self, kind: type[T]) -> list[T]:
        return self._overlay(kind, self._store.all(kind))

    def by_name(self, kind: type[T], name: str) -> T | None:
        for (written_kind, _), obj in self._written.items():
            if written_kind is kind and obj is not None and self._store.name_of(obj) == name:
                return obj  # type: ignore[return-value]
        stored = self._store.by_name(kind, name)
        if stored is None or (kind, stored.id) in self._written:
            return None
        return stored

    def tasks_of_service(self, service_id: str) -> list[Task]:
        tasks = self._overlay(Task, self._store.tasks_of_service(service_id))
        return [task for task in tasks if task.service_id == service_id]

    def tasks_of_node(self, node_id: str) -> list[Task]:
        tasks = self._overlay(Task, self._store.tasks_of_node(node_id))
        return [task for task in tasks if task.node_id == node_id]

    def cluster(self) -> Cluster | None:
        clusters = self.all(Cluster)
        return clusters[0] if clusters else None

    def _overlay(self, kind: type[T], stored: list[T]) -> list[T]:
        if not self._written:
            return stored
        mine = {oid: obj for (k, oid), obj in self._written.items() if k is kind}
        if not mine:
            return stored
        result = [obj for obj in stored if obj.id not in mine]
        result += [obj for obj in mine.values() if obj is not None]  # type: ignore[misc]
        return result
