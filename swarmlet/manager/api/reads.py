"""What the handlers' helpers read: the store, or a transaction inside ``store.update``.

A handler that checks the cluster's state before it writes does both inside one
``await store.update(fn)``, reading through the transaction; a handler that only reads, reads
the store. The helpers they share take either: both ``Store`` and ``Tx`` satisfy ``Reads``.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from swarmlet.models import Cluster, StoredObject, Task

T = TypeVar("T", bound=StoredObject)


class Reads(Protocol):
    def get(self, kind: type[T], object_id: str) -> T: ...

    def find(self, kind: type[T], object_id: str) -> T | None: ...

    def all(self, kind: type[T]) -> list[T]: ...

    def tasks_of_service(self, service_id: str) -> list[Task]: ...

    def cluster(self) -> Cluster | None: ...
