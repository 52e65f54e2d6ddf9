"""The store: every cluster object in memory, indexed, written through to a backend.

The contract (ARCHITECTURE.md), shaped like etcd so that backends are interchangeable:
- one global revision; an object's ``Version.Index`` is the revision of its last write;
- an update or delete of a stale object fails with ``VersionConflict``;
- ``commit`` writes several objects atomically, or none, and is durable when it returns;
- ``watch(from_revision)`` yields every change in revision order; ``snapshot`` gives the
  objects and a watch from the same revision, so a controller misses nothing;
- lookups by ID, by name (unique for services, networks, secrets, configs and the cluster),
  tasks by service and by node.

Everything runs on one event loop: reads are plain method calls on immutable objects.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from swarmlet.clock import Clock, SystemClock
from swarmlet.errors import InvalidSpec, NameConflict, NotFound, VersionConflict
from swarmlet.manager.store.backend import Backend, MemoryBackend
from swarmlet.manager.store.events import Action, Event, Op
from swarmlet.models import (
    Cluster,
    Config,
    Network,
    Node,
    Secret,
    Service,
    StoredObject,
    Task,
    Version,
)

T = TypeVar("T", bound=StoredObject)

_KIND_LIST: tuple[type[StoredObject], ...] = (Cluster, Config, Network, Node, Secret, Service, Task)
KINDS: dict[str, type[StoredObject]] = {kind.__name__: kind for kind in _KIND_LIST}
# Kinds whose names are unique, and how to read the name.
_UNIQUE_NAMES: dict[type[StoredObject], Callable[[Any], str]] = {
    Service: lambda obj: obj.spec.name,
    Cluster: lambda obj: obj.spec.name,
    Network: lambda obj: obj.name,
    Secret: lambda obj: obj.spec.name,
    Config: lambda obj: obj.spec.name,
}
# How many past events a watch may start from. Each holds an object as it was, so this many
# old versions stay in memory: 100,000 kept 115 MB of past task states alive at 10,000 tasks
# (benchmarks/scale.py). Controllers start from the present (``snapshot``); an older start
# gets Compacted and takes a new snapshot.
EVENT_HISTORY = 1_000


class Compacted(Exception):
    """A watch asked to start from a revision older than the kept history."""


@dataclass(frozen=True)
class Snapshot:
    revision: int
    watch: Watch


class Watch:
    """A subscription: every event after ``revision``, in order, until closed."""

    def __init__(self, store: Store, revision: int) -> None:
        self._store = store
        self.revision = revision
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def _push(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def close(self) -> None:
        self._store._watches.discard(self)
        self._queue.put_nowait(None)

    async def next(self) -> Event | None:
        """The next event, or None once closed."""
        return await self._queue.get()

    def drain(self) -> list[Event]:
        """Every event already waiting, without blocking."""
        events: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                self._queue.put_nowait(None)
                break
            events.append(event)
        return events

    async def batches(self) -> AsyncIterator[list[Event]]:
        """Events grouped as they arrive: everything waiting after the first one."""
        while True:
            first = await self.next()
            if first is None:
                return
            yield [first, *self.drain()]

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.next()) is not None:
            yield event


class Store:
    def __init__(self, backend: Backend | None = None, clock: Clock | None = None) -> None:
        self._backend = backend or MemoryBackend()
        self._clock = clock or SystemClock()
        self._objects: dict[type[StoredObject], dict[str, StoredObject]] = {
            kind: {} for kind in KINDS.values()
        }
        self._names: dict[type[StoredObject], dict[str, str]] = {k: {} for k in _UNIQUE_NAMES}
        self._tasks_by_service: dict[str, set[str]] = {}
        self._tasks_by_node: dict[str, set[str]] = {}
        self._history: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self._watches: set[Watch] = set()
        revision, rows = self._backend.load()
        self.revision = revision
        for kind_name, data in rows:
            self._index(KINDS[kind_name].model_validate(json.loads(data)))

    def close(self) -> None:
        for watch in list(self._watches):
            watch.close()
        self._backend.close()

    # Reads

    def get(self, kind: type[T], object_id: str) -> T:
        obj = self._objects[kind].get(object_id)
        if obj is None:
            raise NotFound(f"{kind.__name__.lower()} {object_id} not found")
        return obj  # type: ignore[return-value]

    def find(self, kind: type[T], object_id: str) -> T | None:
        return self._objects[kind].get(object_id)  # type: ignore[return-value]

    def all(self, kind: type[T]) -> list[T]:
        return list(self._objects[kind].values())  # type: ignore[arg-type]

    def by_name(self, kind: type[T], name: str) -> T | None:
        object_id = self._names[kind].get(name)
        return None if object_id is None else self.find(kind, object_id)

    def tasks_of_service(self, service_id: str) -> list[Task]:
        tasks = self._objects[Task]
        return [tasks[i] for i in self._tasks_by_service.get(service_id, ())]  # type: ignore[misc]

    def tasks_of_node(self, node_id: str) -> list[Task]:
        tasks = self._objects[Task]
        return [tasks[i] for i in self._tasks_by_node.get(node_id, ())]  # type: ignore[misc]

    def cluster(self) -> Cluster | None:
        clusters = self.all(Cluster)
        return clusters[0] if clusters else None

    # Writes

    def commit(self, ops: Iterable[Op]) -> list[StoredObject]:
        """Apply every op atomically, returning the objects as written (deletes: as they were).

        Raises VersionConflict, NameConflict, NotFound or InvalidSpec and changes nothing.
        """
        ops = list(ops)
        if not ops:
            return []
        revision = self.revision + 1
        version = Version(index=revision)
        now = self._clock.now()
        pending: dict[tuple[type[StoredObject], str], StoredObject | None] = {}
        events: list[Event] = []
        for op in ops:
            kind, obj = type(op.obj), op.obj
            key = (kind, obj.id)
            current = pending[key] if key in pending else self._objects[kind].get(obj.id)
            written: StoredObject
            if op.action is Action.CREATE:
                if current is not None:
                    raise NameConflict(f"{kind.__name__.lower()} {obj.id} already exists")
                written = obj.replace(version=version, created_at=now, updated_at=now)
            else:
                if current is None:
                    raise NotFound(f"{kind.__name__.lower()} {obj.id} not found")
                if current.version.index != obj.version.index:
                    raise VersionConflict(
                        f"update out of sequence: {kind.__name__.lower()} {obj.id} is at"
                        f" version {current.version.index}, not {obj.version.index}"
                    )
                if op.action is Action.DELETE:
                    written = current
                else:
                    written = obj.replace(
                        version=version, created_at=current.created_at, updated_at=now
                    )
            pending[key] = None if op.action is Action.DELETE else written
            events.append(Event(op.action, written, revision))
        self._check_names(pending)
        self._backend.write(revision, events)
        self.revision = revision
        for (kind, object_id), new in pending.items():
            old = self._objects[kind].get(object_id)
            if old is not None:
                self._unindex(old)
            if new is not None:
                self._index(new)
        for event in events:
            self._history.append(event)
            for watch in self._watches:
                watch._push(event)
        return [event.obj for event in events]

    def _check_names(
        self, pending: dict[tuple[type[StoredObject], str], StoredObject | None]
    ) -> None:
        for (kind, object_id), obj in pending.items():
            name_of = _UNIQUE_NAMES.get(kind)
            if name_of is None or obj is None:
                continue
            name = name_of(obj)
            if not name:
                raise InvalidSpec(f"{kind.__name__.lower()} name must not be empty")
            holder = self._names[kind].get(name)
            if holder is not None and holder != object_id and pending.get((kind, holder), obj):
                raise NameConflict(f"name conflicts with an existing object: {name}")
            for (other_kind, other_id), other in pending.items():
                if (
                    other_kind is kind
                    and other_id != object_id
                    and other is not None
                    and name_of(other) == name
                ):
                    raise NameConflict(f"name conflicts with an existing object: {name}")

    def _index(self, obj: StoredObject) -> None:
        kind = type(obj)
        self._objects[kind][obj.id] = obj
        if kind in _UNIQUE_NAMES:
            self._names[kind][_UNIQUE_NAMES[kind](obj)] = obj.id
        if isinstance(obj, Task):
            self._tasks_by_service.setdefault(obj.service_id, set()).add(obj.id)
            if obj.node_id:
                self._tasks_by_node.setdefault(obj.node_id, set()).add(obj.id)

    def _unindex(self, obj: StoredObject) -> None:
        kind = type(obj)
        del self._objects[kind][obj.id]
        if kind in _UNIQUE_NAMES:
            name = _UNIQUE_NAMES[kind](obj)
            if self._names[kind].get(name) == obj.id:
                del self._names[kind][name]
        if isinstance(obj, Task):
            self._tasks_by_service.get(obj.service_id, set()).discard(obj.id)
            if obj.node_id:
                self._tasks_by_node.get(obj.node_id, set()).discard(obj.id)

    # Watches

    def watch(self, from_revision: int | None = None) -> Watch:
        """Every change after ``from_revision`` (default: now), in revision order."""
        start = self.revision if from_revision is None else from_revision
        watch = Watch(self, start)
        if start < self.revision:
            oldest = self._history[0].revision if self._history else self.revision + 1
            if start + 1 < oldest:
                raise Compacted(f"revision {start} is older than the kept history ({oldest})")
            for event in self._history:
                if event.revision > start:
                    watch._push(event)
        self._watches.add(watch)
        return watch

    def snapshot(self) -> Snapshot:
        """The current revision and a watch from it: read the objects now, follow the watch."""
        return Snapshot(self.revision, self.watch())
