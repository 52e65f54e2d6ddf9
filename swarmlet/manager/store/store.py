"""The store: every cluster object in memory, indexed, written through to a backend.

The contract (ARCHITECTURE.md), shaped like etcd so that backends are interchangeable:
- one global revision; an object's ``Version.Index`` is the revision of its last write;
- ``await update(fn)``: ``fn`` reads and writes through a transaction (``Tx``), written
  atomically, or not at all, and durable when ``update`` returns; an update or delete of a
  stale object fails with ``VersionConflict``;
- ``watch(from_revision)`` yields every change in revision order; ``snapshot`` gives the
  objects and a watch from the same revision, so a controller misses nothing;
- lookups by ID, by name (unique for services, networks, secrets, configs and the cluster),
  tasks by service and by node.

Reads are plain method calls on immutable objects, from the objects the store keeps in
memory. Writes are awaited: the backend's I/O runs off the event loop. With a local backend
(memory, SQLite) the store checks and numbers each transaction itself, one at a time; with a
remote one (etcd) the objects are a cache the backend's stream of changes keeps, and a
transaction the backend finds stale runs again once the cache has caught up. There, what
another manager wrote may be kept unread until it is asked for (``Unread``): a read of one
object parses that object, a read of a kind (all of them, a service's or a node's tasks)
every unread one of the kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from swarmlet.clock import Clock, SystemClock
from swarmlet.errors import InvalidSpec, NameConflict, NotFound, Unavailable, VersionConflict
from swarmlet.manager.store.backend import (
    Backend,
    Change,
    Compacted,
    LocalBackend,
    MemoryBackend,
    RemoteBackend,
    Stale,
    Write,
)
from swarmlet.manager.store.events import Action, Event, Op, Unread
from swarmlet.manager.store.tx import Commit, Tx
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
from swarmlet.models.base import OWN_JSON

if TYPE_CHECKING:
    from swarmlet.manager.leadership import Term

T = TypeVar("T", bound=StoredObject)
R = TypeVar("R")
log = logging.getLogger(__name__)

_KIND_LIST: tuple[type[StoredObject], ...] = (Cluster, Config, Network, Node, Secret, Service, Task)
KINDS: dict[str, type[StoredObject]] = {kind.__name__: kind for kind in _KIND_LIST}


def read_stored(kind: str, data: str | bytes) -> StoredObject:
    """An object of ``kind`` from the JSON a backend kept of it (opened, when sealed), as
    the store wrote it: without Go's key matching (``OWN_JSON``), which that JSON never needs."""
    return KINDS[kind].model_validate_json(data, context=OWN_JSON)


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


# How many times a transaction runs again after a remote backend found it stale before the
# store gives up: each run follows the cache catching up, so only a storm of writes to the
# same objects gets this far.
STALE_RETRIES = 50
# A remote backend that cannot be loaded again (after a compaction) is tried again after
# 0.1 s, doubling up to 2 s, as its watch is.
RELOAD_RETRY_S = 0.1
RELOAD_RETRY_MAX_S = 2.0


@dataclass(frozen=True)
class Snapshot:
    revision: int
    watch: Watch


class Watch:
    """A subscription: every event after ``revision``, in order, until closed."""

    def __init__(self, store: Store, revision: int) -> None:
        self._store = store
        self.revision = revision
        # A transaction's events arrive together, as one item (a leader's store has a
        # watch per controller, and passes of thousands of tasks); ``next`` takes them
        # out of ``_ready`` one at a time.
        self._queue: asyncio.Queue[Sequence[Event] | None] = asyncio.Queue()
        self._ready: deque[Event] = deque()

    def _push(self, events: Sequence[Event]) -> None:
        """One transaction's events (or the kept history's): never changed after."""
        if events:
            self._queue.put_nowait(events)

    def close(self) -> None:
        self._store._watches.discard(self)
        self._queue.put_nowait(None)

    async def next(self) -> Event | None:
        """The next event, or None once closed."""
        while not self._ready:
            events = await self._queue.get()
            if events is None:
                return None
            self._ready.extend(events)
        return self._ready.popleft()

    def drain(self) -> list[Event]:
        """Every event already waiting, without blocking."""
        events = list(self._ready)
        self._ready.clear()
        while not self._queue.empty():
            more = self._queue.get_nowait()
            if more is None:
                self._queue.put_nowait(None)
                break
            events.extend(more)
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


@dataclass(frozen=True, slots=True)
class _Planned:
    """One object's write, checked against the store: as it will be stored (timestamps set,
    version not yet), the version it is at now (0: new), and its name before and after."""

    action: Action
    obj: StoredObject
    expected: int
    name_before: str | None
    name_after: str | None


def _seen(planned: list[_Planned]) -> list[_Planned]:
    """The writes a transaction's watchers see: not an object made and deleted in it (nothing
    to write, nothing to see)."""
    return [p for p in planned if p.expected or p.action is not Action.DELETE]


def _as_written(p: _Planned, revision: int, version: Version) -> StoredObject:
    """A planned write's object as committed at ``revision`` (``version``: its Version); a
    delete's as it was."""
    if p.action is Action.DELETE or p.obj.version.index == revision:
        return p.obj
    return p.obj.replace(version=version)


class Store:
    def __init__(self, backend: Backend | None = None, clock: Clock | None = None) -> None:
        self._backend: Backend = backend or MemoryBackend()
        # A remote backend streams its changes (``follow``); a local one is only written to.
        self._remote = hasattr(self._backend, "follow")
        self._clock = clock or SystemClock()
        # Every object as last read, indexed; a newer version not read yet waits in _unread
        # (only on a remote backend, and never of a kind with unique names, which are read
        # at once: every write checks them).
        self._objects: dict[type[StoredObject], dict[str, StoredObject]] = {
            kind: {} for kind in KINDS.values()
        }
        self._unread: dict[type[StoredObject], dict[str, Unread]] = {
            kind: {} for kind in KINDS.values()
        }
        self._names: dict[type[StoredObject], dict[str, str]] = {k: {} for k in _UNIQUE_NAMES}
        self._tasks_by_service: dict[str, set[str]] = {}
        self._tasks_by_node: dict[str, set[str]] = {}
        self._history: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self._watches: set[Watch] = set()
        self._lock = asyncio.Lock()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._follower: asyncio.Task[None] | None = None
        self._failed: Exception | None = None
        self.revision = 0

    @classmethod
    async def open(cls, backend: Backend, clock: Clock | None = None) -> Store:
        """A store with the backend's objects loaded (and, remote, followed)."""
        store = cls(backend, clock)
        await store.load()
        return store

    async def load(self) -> None:
        if self._remote:
            remote: RemoteBackend = self._backend  # type: ignore[assignment]
            revision, objects = await remote.load()
            for obj in objects:
                self._index(obj)
            self.revision = revision
            self._follower = asyncio.create_task(self._follow(remote))
            return
        local: LocalBackend = self._backend  # type: ignore[assignment]
        revision, rows = await local.load()
        for kind_name, data in rows:
            self._index(read_stored(kind_name, data))
        self.revision = revision

    def close(self) -> None:
        for watch in list(self._watches):
            watch.close()
        if self._follower is not None:
            self._follower.cancel()
        self._fail_waiters(Unavailable("the store is closed"))
        self._backend.close()

    def fenced(self, term: Term) -> Store:
        """The store as the leader's controllers write to it during ``term``: every write
        lands only while the term lasts (on etcd, its txn also compares the leader key's
        create revision with the term's) and raises ``TermEnded`` once it is over. The same
        objects, watches and revision: one store, with the fence on its writes. A store of
        one manager's own (memory, SQLite) has no other leader to fence out: itself."""
        if not self._remote:
            return self
        if not term.revision:
            raise ValueError("a term without a leader key cannot fence a shared store's writes")
        return _FencedStore(self, term.revision)

    def _fence(self) -> int:
        """The leader key's create revision the writes are fenced on (0: none)."""
        return 0

    @property
    def backend(self) -> Backend:
        """Where the objects are kept (for what the backend alone does: etcd's compaction)."""
        return self._backend

    @property
    def shared(self) -> bool:
        """Whether the backend is shared by several managers (etcd): the store is then a
        cache of it, and another manager can take over the leader's work."""
        return self._remote

    # Reads

    def get(self, kind: type[T], object_id: str) -> T:
        obj = self.find(kind, object_id)
        if obj is None:
            raise NotFound(f"{kind.__name__.lower()} {object_id} not found")
        return obj

    def find(self, kind: type[T], object_id: str) -> T | None:
        unread = self._unread[kind].get(object_id)
        if unread is not None:
            self._read_in(unread)
        return self._objects[kind].get(object_id)  # type: ignore[return-value]

    def all(self, kind: type[T]) -> list[T]:
        self._read_kind(kind)
        return list(self._objects[kind].values())  # type: ignore[arg-type]

    def by_name(self, kind: type[T], name: str) -> T | None:
        object_id = self._names[kind].get(name)
        return None if object_id is None else self.find(kind, object_id)

    def tasks_of_service(self, service_id: str) -> list[Task]:
        self._read_kind(Task)
        tasks = self._objects[Task]
        return [tasks[i] for i in self._tasks_by_service.get(service_id, ())]  # type: ignore[misc]

    def tasks_of_node(self, node_id: str) -> list[Task]:
        self._read_kind(Task)
        tasks = self._objects[Task]
        return [tasks[i] for i in self._tasks_by_node.get(node_id, ())]  # type: ignore[misc]

    def cluster(self) -> Cluster | None:
        clusters = self.all(Cluster)
        return clusters[0] if clusters else None

    @staticmethod
    def name_of(obj: StoredObject) -> str | None:
        """The object's unique name, or None for kinds whose names need not be unique."""
        name_of = _UNIQUE_NAMES.get(type(obj))
        return None if name_of is None else name_of(obj)

    # Writes

    async def update(self, fn: Callable[[Tx], R]) -> Commit[R]:
        """Run ``fn`` on a transaction and write what it wrote, all or nothing.

        Raises VersionConflict, NameConflict, NotFound or InvalidSpec (or what ``fn`` raises)
        and writes nothing. ``fn`` may run more than once: it only reads and writes through
        the transaction.
        """
        if self._remote:
            return await self._update_remote(fn)
        async with self._lock:
            tx = Tx(self)
            value = fn(tx)
            if not tx.ops:
                return Commit(self.revision, [], value)
            revision = self.revision + 1
            events = self._events(self._plan(tx.ops, revision), revision)
            await self._write_local(revision, events)
            return Commit(revision, [event.obj for event in events], value)

    async def _write_local(self, revision: int, events: list[Event]) -> None:
        """Keep the transaction, then apply it. Cancelling the caller while the backend
        writes in its thread cannot part the two: the row may already be on disk, so the
        write is waited for and applied before the cancellation goes on (and before the
        lock lets the next transaction take the same revision)."""
        backend: LocalBackend = self._backend  # type: ignore[assignment]
        if type(backend) is MemoryBackend:
            self._apply(revision, events)  # nothing to wait for: never yields to the loop
            return
        writing = asyncio.ensure_future(backend.write(revision, events))
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            if not writing.done():
                await asyncio.wait({writing})
            if not writing.cancelled() and writing.exception() is None:
                self._apply(revision, events)
            raise
        self._apply(revision, events)

    async def commit(self, ops: Sequence[Op]) -> list[StoredObject]:
        """Write ops built elsewhere (each carrying the version it was read at): the objects
        as written. A transaction of its own, for the write sites that decide outside one."""
        ops = list(ops)
        return (await self.update(lambda tx: tx.write(ops))).objects

    async def _update_remote(self, fn: Callable[[Tx], R]) -> Commit[R]:
        backend: RemoteBackend = self._backend  # type: ignore[assignment]
        synced = False
        for _ in range(STALE_RETRIES):
            tx = Tx(self)
            value = fn(tx)
            if not tx.ops:
                return Commit(self.revision, [], value)
            try:
                planned = self._plan(tx.ops, 0)
            except (VersionConflict, NotFound, NameConflict):
                # The cache may be behind what the caller read (through another manager):
                # refuse only what the backend's present refuses.
                if synced:
                    raise
                await self._caught_up(await backend.current_revision())
                synced = True
                continue
            writes = [
                Write(p.action, p.obj, p.expected, p.name_before, p.name_after) for p in planned
            ]
            try:
                revision = await backend.commit(writes, self._fence())
            except Stale as stale:
                await self._caught_up(stale.revision)
                continue
            await self._caught_up(revision)
            return Commit(revision, self._committed(planned, revision), value)
        raise Unavailable("the store's transaction kept meeting newer writes; try again")

    def _plan(self, ops: Sequence[Op], revision: int) -> list[_Planned]:
        """Check every op against the store and the ones before it; one write per object.

        ``revision``: the one the writes will have (a local backend's), or 0 when the backend
        numbers it (remote)."""
        now = self._clock.now()
        # One copy per written object, with its version when it is known: a scheduler's pass
        # writes thousands of tasks.
        version = {"version": Version(index=revision)} if revision else {}
        planned: dict[tuple[type[StoredObject], str], _Planned] = {}
        seen: dict[tuple[type[StoredObject], str], StoredObject | None] = {}
        for op in ops:
            kind, obj = type(op.obj), op.obj
            key = (kind, obj.id)
            before = planned.get(key)
            stored = self.find(kind, obj.id)
            # The object as the transaction last wrote it (None: deleted): a later op on it
            # carries the version the transaction showed, not the one the commit gives it.
            current = seen.get(key, stored)
            seen[key] = None if op.action is Action.DELETE else obj
            if op.action is Action.CREATE:
                if current is not None:
                    raise NameConflict(f"{kind.__name__.lower()} {obj.id} already exists")
                written = obj.replace(created_at=now, updated_at=now, **version)
            else:
                if current is None:
                    raise NotFound(f"{kind.__name__.lower()} {obj.id} not found")
                if current.version.index != obj.version.index:
                    raise VersionConflict(
                        f"update out of sequence: {kind.__name__.lower()} {obj.id} is at"
                        f" version {current.version.index}, not {obj.version.index}"
                    )
                if op.action is Action.DELETE:
                    written = stored if stored is not None else current
                else:
                    # Made in this transaction: its creation time is the one it will have.
                    made = before.obj if before is not None else current
                    written = obj.replace(created_at=made.created_at, updated_at=now, **version)
            planned[key] = _Planned(
                action=op.action,
                obj=written,
                expected=stored.version.index if stored is not None else 0,
                name_before=None if stored is None else self.name_of(stored),
                name_after=None if op.action is Action.DELETE else self.name_of(written),
            )
        self._check_names(planned)
        return list(planned.values())

    def _committed(self, planned: list[_Planned], revision: int) -> list[StoredObject]:
        """A remote commit's objects as written (those of ``_events``), once the cache has
        applied it: the cache's own where it holds them at that revision (the watch brought
        them back), rather than another copy of each."""
        version = Version(index=revision)
        objects = []
        for p in _seen(planned):
            cached = self._objects[type(p.obj)].get(p.obj.id)
            if (
                cached is not None
                and cached.version.index == revision
                and p.action is not Action.DELETE
            ):
                objects.append(cached)
            else:  # a delete, or moved on since, or not read yet
                objects.append(_as_written(p, revision, version))
        return objects

    def _events(self, planned: list[_Planned], revision: int) -> list[Event]:
        version = Version(index=revision)
        return [
            Event(p.action, _as_written(p, revision, version), revision) for p in _seen(planned)
        ]

    def _check_names(self, planned: dict[tuple[type[StoredObject], str], _Planned]) -> None:
        final = {key: None if p.action is Action.DELETE else p.obj for key, p in planned.items()}
        for (kind, object_id), obj in final.items():
            name_of = _UNIQUE_NAMES.get(kind)
            if name_of is None or obj is None:
                continue
            name = name_of(obj)
            if not name:
                raise InvalidSpec(f"{kind.__name__.lower()} name must not be empty")
            holder = self._names[kind].get(name)
            # The holder keeps the name unless this transaction deletes or renames it (the
            # loop below then sees what it became).
            if holder is not None and holder != object_id and (kind, holder) not in final:
                raise NameConflict(f"name conflicts with an existing object: {name}")
            for (other_kind, other_id), other in final.items():
                if (
                    other_kind is kind
                    and other_id != object_id
                    and other is not None
                    and name_of(other) == name
                ):
                    raise NameConflict(f"name conflicts with an existing object: {name}")

    # Applying committed changes: this store's own (local) or the backend's stream (remote).

    def _apply(self, revision: int, events: list[Event]) -> None:
        for event in events:
            kind, subject = event.kind, event.subject
            # A version not read yet is replaced (or deleted) unread.
            self._unread[kind].pop(event.object_id, None)
            if isinstance(subject, Unread) and event.action is not Action.DELETE:
                self._unread[kind][subject.id] = subject  # the last read one stays indexed
                continue
            old = self._objects[kind].get(event.object_id)
            if old is not None:
                self._unindex(old)
            if event.action is not Action.DELETE:
                self._index(event.obj)
        self.revision = revision
        self._history.extend(events)
        for watch in self._watches:
            watch._push(events)
        if self._waiters:
            waiting = []
            for wanted, future in self._waiters:
                if wanted <= revision:
                    if not future.done():
                        future.set_result(None)
                else:
                    waiting.append((wanted, future))
            self._waiters = waiting

    async def _follow(self, backend: RemoteBackend) -> None:
        try:
            while True:
                try:
                    async for revision, changes in backend.follow(self.revision):
                        self._apply(revision, self._changed(revision, changes))
                    return
                except Compacted as exc:
                    # Behind the backend's compaction (cut off from it for long): what
                    # changed meanwhile comes from loading it whole.
                    log.warning("store: %s; loading the backend again", exc)
                    await self._reload(backend)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every waiter must hear why
            log.warning("store: the backend's changes stopped: %s", exc)
            self._failed = exc
            self._fail_waiters(Unavailable(f"the store lost its backend: {exc}"))

    async def _reload(self, backend: RemoteBackend) -> None:
        """Load the backend again and apply the differences with the cache as one revision's
        events: watchers see each object's last state (its states between are gone), as
        they see a burst of commits. A backend that cannot be read now is tried again."""
        failures = 0
        while True:
            try:
                revision, objects = await backend.load()
                break
            except Unavailable as exc:
                failures += 1
                delay = min(RELOAD_RETRY_S * 2 ** min(failures - 1, 8), RELOAD_RETRY_MAX_S)
                log.info("store: loading the backend failed (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
        for kind in KINDS.values():  # compared below by version
            self._read_kind(kind)
        loaded = {(type(obj), obj.id): obj for obj in objects}
        events = [
            Event(Action.DELETE, obj, revision)
            for kind, cached in self._objects.items()
            for obj in cached.values()
            if (kind, obj.id) not in loaded
        ]
        for (kind, object_id), obj in loaded.items():
            cached = self._objects[kind].get(object_id)
            if cached is None:
                events.append(Event(Action.CREATE, obj, revision))
            elif cached.version.index != obj.version.index:
                events.append(Event(Action.UPDATE, obj, revision))
        self._apply(revision, events)

    def _changed(self, revision: int, changes: list[Change]) -> list[Event]:
        events = []
        for change in changes:
            kind = KINDS[change.kind]
            cached: StoredObject | Unread | None = self._unread[kind].get(change.object_id)
            if cached is None:
                cached = self._objects[kind].get(change.object_id)
            if change.action is Action.DELETE:
                gone = cached if cached is not None else change.obj
                if gone is not None:
                    events.append(Event(Action.DELETE, gone, revision))
            elif change.obj is not None:
                obj = change.obj
                if isinstance(obj, Unread) and kind in _UNIQUE_NAMES:
                    obj = obj.read()  # its name is checked by every write
                action = Action.CREATE if cached is None else Action.UPDATE
                events.append(Event(action, obj, revision))
        return events

    async def _caught_up(self, revision: int) -> None:
        """Return once the store has applied ``revision`` (a remote backend's)."""
        if self.revision >= revision:
            return
        if self._failed is not None:
            raise Unavailable(f"the store lost its backend: {self._failed}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, future))
        await future

    def _fail_waiters(self, error: Exception) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)
        self._waiters = []

    def _read_in(self, unread: Unread) -> None:
        """Parse an unread version and index it in place of the one last read (it stays
        unread if it cannot be parsed: every read of it raises why)."""
        obj = unread.read()
        del self._unread[unread.kind][unread.id]
        old = self._objects[unread.kind].get(unread.id)
        if old is not None:
            self._unindex(old)
        self._index(obj)

    def _read_kind(self, kind: type[StoredObject]) -> None:
        """Read every unread object of ``kind``."""
        unread = self._unread[kind]
        while unread:
            self._read_in(next(iter(unread.values())))

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
            watch._push([event for event in self._history if event.revision > start])
        self._watches.add(watch)
        return watch

    def snapshot(self) -> Snapshot:
        """The current revision and a watch from it: read the objects now, follow the watch."""
        return Snapshot(self.revision, self.watch())


class _FencedStore(Store):
    """A store's writes fenced on a term (``Store.fenced``). It shares the store's state
    itself, not a copy (``__dict__`` is the store's: the revision, the objects, the watches
    and the follower are one), so the controllers given it read and follow the store as
    everyone does; only the fence, kept in a slot outside that state, is its own."""

    __slots__ = ("_term_revision",)

    def __init__(self, store: Store, revision: int) -> None:  # no Store.__init__: shared
        self.__dict__ = store.__dict__
        self._term_revision = revision

    def _fence(self) -> int:
        return self._term_revision

    def close(self) -> None:
        raise TypeError("a fenced store is closed through the store it fences")
