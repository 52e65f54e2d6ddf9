"""The remote backend: the store's objects in etcd, shared by every manager, sealed with the
store's key.

Keys, under a prefix (``/swarmlet/``):
- ``<prefix>o/<Kind>/<ID>``: the object's JSON, as SQLite writes it, sealed as SQLite seals
  it (bound to ``Kind/ID``). Its ``Version.Index`` is the key's ``mod_revision``: what the JSON
  holds for it is ignored.
- ``<prefix>n/<Kind>/<name>``: the ID of the object holding a unique name. Claimed (it must
  not exist) and released in the transaction that writes the object, so two managers cannot
  both take a name.

A transaction is one etcd txn: each object's ``mod_revision`` compared with the version the
store's cache had (``create_revision == 0`` for a new one), names claimed and released; a
refused txn is ``Stale``. ``follow`` is etcd's watch on the whole prefix, one item per
revision (also for one that wrote only names), opened again from the last revision after a
drop. etcd numbers the revisions, and every revision of the etcd cluster is taken to be this
store's (the cluster is swarmlet's alone, every key under the prefix): the store waits for
the revisions of its commits to come through ``follow``. docs/store.md, "The etcd backend".
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from functools import partial
from itertools import groupby

from swarmlet.errors import NO_LEADER, Unavailable
from swarmlet.manager.etcd.client import (
    Compacted as EtcdCompacted,
)
from swarmlet.manager.etcd.client import (
    Compare,
    Delete,
    EtcdClient,
    KeyValue,
    Put,
    WatchEvent,
    prefix_end,
)
from swarmlet.manager.store.backend import Change, Compacted, Stale, TermEnded, Write
from swarmlet.manager.store.encryption import (
    Cipher,
    object_context,
    open_object,
    open_sealed,
)
from swarmlet.manager.store.events import Action, Unread
from swarmlet.manager.store.store import KINDS, read_stored
from swarmlet.models import Secret, StoredObject, Version

log = logging.getLogger(__name__)

# Keys a page of ``load`` reads: every page at the first page's revision.
LOAD_PAGE = 500
# A dropped watch is opened again after 0.1 s, doubling up to 2 s while it keeps failing.
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 2.0
# The first byte of a sealed value (``Cipher.seal``), which no JSON starts with.
_SEALED = 0x01
# A zlib stream's first byte (at any level with the default window), which no JSON starts
# with either.
_ZLIB = b"\x78"
# Fast compression: task JSON shrinks about sixfold at level 1, and a pass of thousands of
# tasks is compressed on the event loop.
COMPRESSION_LEVEL = 1
# How long a write may wait for etcd: a member that has lost its leader refuses at once (the
# client asks for a leader), but one that is only now losing it holds a write for etcd's own
# request timeout (7 s); the user hears Swarm's lost quorum sooner. A scheduler's pass of
# thousands of tasks (megabytes) is given more: it is not that the cluster is slow to agree.
WRITE_TIMEOUT_S = 5.0
WRITE_S_PER_MIB = 2.0
# The kinds whose objects other managers write are parsed only when asked for (``Unread``):
# tasks, of which a manager that does not lead is sent every version the leader writes (four
# or more each as it is placed and started), where parsing each was two thirds of its work
# (benchmarks/scale_managers.py).
READ_ON_DEMAND = frozenset({"Task"})
# etcd's refusal of a compaction to a revision it has already compacted (mvcc.ErrCompacted).
_ALREADY_COMPACTED = "required revision has been compacted"


class EtcdBackend:
    """``RemoteBackend`` over an etcd cluster through ``client`` (the caller's to close)."""

    def __init__(
        self, client: EtcdClient, cipher: Cipher | None, prefix: bytes = b"/swarmlet/"
    ) -> None:
        self._client = client
        self._cipher = cipher
        self._prefix = prefix
        self._objects = prefix + b"o/"
        self._names = prefix + b"n/"
        # The election's (``swarmlet.manager.etcd.election``, on the same prefix): a fenced
        # write lands only while this key is the one its term made.
        self.leader_key = prefix + b"leader"
        self._readers: set[asyncio.Task[None]] = set()
        # This backend's own puts, by key, until the watch brings them back: their objects
        # are taken as written rather than opened and parsed again (the value is compared
        # whole, and a sealed one is unique to its write), as a local backend's are.
        self._in_flight: dict[bytes, tuple[bytes, StoredObject]] = {}

    # Keys and values

    def object_key(self, kind: str, object_id: str) -> bytes:
        return self._objects + f"{kind}/{object_id}".encode()

    def name_key(self, kind: str, name: str) -> bytes:
        return self._names + f"{kind}/{name}".encode()

    def _value(self, obj: StoredObject) -> bytes:
        kind = type(obj).__name__
        data = obj.model_dump_json(by_alias=True, exclude_none=True)
        if self._cipher is None:
            return data.encode()
        # Compressed, then sealed: etcd keeps each transaction as one entry of its log, and
        # etcd 3.4 cannot read back an entry over 10 MB when it restarts (etcd-io/etcd#14025),
        # so a scheduler's pass of thousands of tasks must stay well under it (10,000 tasks
        # are 11.5 MB of sealed JSON, about 2 MB compressed). Not a secret's: compressing
        # what an attacker can partly choose (its labels) beside what it must not learn
        # (its data) would let the ciphertext's length tell about the data.
        plain = data.encode()
        if not isinstance(obj, Secret):
            plain = zlib.compress(plain, COMPRESSION_LEVEL)
        return self._cipher.seal(plain, object_context(kind, obj.id))

    def _kind_and_id(self, key: bytes) -> tuple[str, str] | None:
        """An object key's kind and ID; None for any other key, or a kind unknown here."""
        if not key.startswith(self._objects):
            return None
        kind, _, object_id = key[len(self._objects) :].decode().partition("/")
        if kind not in KINDS or not object_id:
            log.warning("etcd backend: ignoring the key %r", key)
            return None
        return kind, object_id

    def _object(self, kind: str, object_id: str, kv: KeyValue) -> StoredObject:
        return _parsed(kind, self._opened(kind, object_id, kv), kv.mod_revision)

    def _opened(self, kind: str, object_id: str, kv: KeyValue) -> str | bytes:
        """The object's JSON, opened (and decompressed). A value that does not open (not
        sealed with the store's key, or altered) is refused here, as it comes."""
        # Sealed values are bytes to ``open_object``, plain ones text: a value sealed as the
        # store is not, or the other way round, is refused as SQLite's row would be.
        value = kv.value
        stored: str | bytes = value if value[:1] == bytes([_SEALED]) else value.decode()
        if self._cipher is None:
            return open_object(None, kind, object_id, stored)
        data = open_sealed(self._cipher, kind, object_id, stored)
        if data[:1] == _ZLIB:  # compressed (JSON starts with "{")
            data = zlib.decompress(data)
        return data

    # RemoteBackend

    async def load(self) -> tuple[int, list[StoredObject]]:
        start, end = self._objects, prefix_end(self._objects)
        revision = 0
        objects: list[StoredObject] = []
        while True:
            page = await self._client.range(start, end, limit=LOAD_PAGE, revision=revision)
            revision = revision or page.revision
            for kv in page.kvs:
                named = self._kind_and_id(kv.key)
                if named is not None:
                    objects.append(self._object(*named, kv))
            if not page.more or not page.kvs:
                return revision, objects
            start = page.kvs[-1].key + b"\0"

    def follow(self, from_revision: int) -> AsyncIterator[tuple[int, list[Change]]]:
        return self._follow(from_revision)

    async def _follow(self, from_revision: int) -> AsyncIterator[tuple[int, list[Change]]]:
        # The stream is read by a task of its own, so that ``close`` (sync) can stop it.
        queue: asyncio.Queue[tuple[int, list[Change]] | Exception | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(from_revision, queue), name="etcd watch")
        self._readers.add(reader)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            reader.cancel()
            self._readers.discard(reader)

    async def _read(
        self,
        from_revision: int,
        queue: asyncio.Queue[tuple[int, list[Change]] | Exception | None],
    ) -> None:
        """Put every revision after ``from_revision`` on ``queue``, in order, opening the
        watch again from the last one put when it drops; an error that a new watch cannot
        mend (a compacted start, a value that does not open) is put on it and ends this."""
        last, failures = from_revision, 0
        start, end = self._prefix, prefix_end(self._prefix)
        try:
            while True:
                try:
                    # Without prev_kv: a delete's last state is the store's cached object,
                    # and the previous values would double what every update of thousands
                    # of tasks sends (their watch took 4.3 s with them, 1.75 s without).
                    async for response in self._client.watch(start, end, last + 1):
                        # One response may hold several revisions, each one whole.
                        for revision, events in groupby(
                            response.events, key=lambda e: e.kv.mod_revision
                        ):
                            if revision > last:
                                queue.put_nowait((revision, self._changes(list(events))))
                                last, failures = revision, 0
                except EtcdCompacted as exc:  # the start is gone: the store must load again
                    raise Compacted(str(exc)) from exc
                except Unavailable as exc:
                    failures += 1
                    delay = min(FIRST_RETRY_S * 2 ** min(failures - 1, 8), MAX_RETRY_S)
                    log.info("etcd backend: the watch dropped (%s); again in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            queue.put_nowait(None)
            raise
        except Exception as exc:  # the store fails its waiters with it
            queue.put_nowait(exc)

    def _changes(self, events: list[WatchEvent]) -> list[Change]:
        """The changes of one revision's events."""
        changes = []
        version: Version | None = None  # one for the revision's own objects, made once
        for event in events:
            named = self._kind_and_id(event.kv.key)
            if named is None:
                continue  # a name, or another key of ours: only the revision counts
            kind, object_id = named
            if event.deleted:
                last = event.prev_kv
                gone = None if last is None else self._object(kind, object_id, last)
                changes.append(Change(Action.DELETE, kind, object_id, gone))
            else:
                created = event.kv.create_revision == event.kv.mod_revision
                action = Action.CREATE if created else Action.UPDATE
                kv = event.kv
                own = self._in_flight.get(kv.key)
                put: StoredObject | Unread
                if own is not None and own[0] == kv.value:
                    del self._in_flight[kv.key]
                    version = version or Version(index=kv.mod_revision)
                    put = own[1].replace(version=version)
                else:
                    put = self._other(kind, object_id, kv)
                changes.append(Change(action, kind, object_id, put))
        return changes

    def _other(self, kind: str, object_id: str, kv: KeyValue) -> StoredObject | Unread:
        """An object another manager wrote (or this one, but not as it has it in flight)."""
        if kind not in READ_ON_DEMAND:
            return self._object(kind, object_id, kv)
        data = self._opened(kind, object_id, kv)
        return Unread(
            KINDS[kind], object_id, kv.mod_revision, partial(_parsed, kind, data, kv.mod_revision)
        )

    async def commit(self, writes: Sequence[Write], fence: int = 0) -> int:
        compares: list[Compare] = []
        if fence:
            # The term's leader key, as its term made it: gone, or made again by another
            # manager's term, and nothing of this txn is written.
            compares.append(Compare(self.leader_key, "CREATE", fence))
        ops: list[Put | Delete] = []
        own: dict[bytes, tuple[bytes, StoredObject]] = {}
        claimed = {
            self.name_key(type(w.obj).__name__, w.name_after)
            for w in writes
            if w.name_after is not None and w.name_after != w.name_before
        }
        released = {
            self.name_key(type(w.obj).__name__, w.name_before)
            for w in writes
            if w.name_before is not None and w.name_before != w.name_after
        }
        for write in writes:
            kind = type(write.obj).__name__
            key = self.object_key(kind, write.obj.id)
            if write.expected:
                compares.append(Compare.modified_at(key, write.expected))
            else:
                compares.append(Compare.absent(key))
            if write.action is not Action.DELETE:
                put = Put(key, self._value(write.obj))
                ops.append(put)
                own[key] = (put.value, write.obj)
            elif write.expected:  # (made and deleted in this transaction: nothing to delete)
                ops.append(Delete(key))
            if write.name_after is not None and write.name_after != write.name_before:
                name = self.name_key(kind, write.name_after)
                # A name another object releases in this transaction exists until then, held
                # by that object's compare to the version that has it: it is only put.
                if name not in released:
                    compares.append(Compare.absent(name))
                ops.append(Put(name, write.obj.id.encode()))
            if write.name_before is not None and write.name_before != write.name_after:
                name = self.name_key(kind, write.name_before)
                if name not in claimed:  # etcd refuses a txn that touches a key twice
                    ops.append(Delete(name))
        self._in_flight.update(own)
        size = sum(len(op.value) for op in ops if isinstance(op, Put))
        within = WRITE_TIMEOUT_S + size / (1 << 20) * WRITE_S_PER_MIB
        try:
            # Not asyncio.wait_for: Python 3.11's returns the result and drops a cancellation
            # that comes as the txn completes (gh-86296), and the cancelled caller runs on
            # (a controller whose leader's term ended, writing on: tests/e2e/test_failover.py).
            async with asyncio.timeout(within):
                result = await self._client.txn(compares, ops)
        except TimeoutError as exc:
            self._forget(own)
            reason = Unavailable(f"etcd did not answer within {within:.1f} s")
            raise _no_leader(reason) from exc
        except Unavailable as exc:
            self._forget(own)
            raise _no_leader(exc) from exc
        except BaseException:
            self._forget(own)
            raise
        if not result.succeeded:
            self._forget(own)
            if fence:
                await self._check_term(fence)
            raise Stale(result.revision)
        return result.revision

    async def _check_term(self, fence: int) -> None:
        """After a fenced txn was refused: ``TermEnded`` if its term is over (the refusal
        is then the fence's, or the term would have ended before a retry anyway)."""
        try:
            found = await self._client.range(self.leader_key)
        except Unavailable as exc:
            raise _no_leader(exc) from exc
        now = found.kvs[0].create_revision if found.kvs else 0
        if now != fence:
            key = f"made again at revision {now}" if now else "gone"
            raise TermEnded(
                "this manager's term of leadership has ended (its leader key, made at"
                f" revision {fence}, is {key}): the write was not made"
            )

    def _forget(self, own: dict[bytes, tuple[bytes, StoredObject]]) -> None:
        for key, (value, _) in own.items():
            if (held := self._in_flight.get(key)) is not None and held[0] == value:
                del self._in_flight[key]

    async def current_revision(self) -> int:
        try:
            return (await self._client.range(self._prefix, limit=1)).revision
        except Unavailable as exc:
            raise _no_leader(exc) from exc

    async def compact(self, revision: int) -> None:
        """Drop etcd's history before ``revision`` (``compaction``): a watch can no longer
        start before it. One that etcd has compacted already (an earlier leader) is done."""
        try:
            await self._client.compact(revision)
        except Unavailable as exc:
            if _ALREADY_COMPACTED not in exc.message:
                raise

    def close(self) -> None:
        for reader in list(self._readers):
            reader.cancel()


def _parsed(kind: str, data: str | bytes, revision: int) -> StoredObject:
    return read_stored(kind, data).replace(version=Version(index=revision))


def _no_leader(exc: Unavailable) -> Unavailable:
    """What a write answers when etcd does not take it: its member is down, or has no
    leader (too few members reachable), which is Swarm's lost quorum to the user."""
    return Unavailable(f"{NO_LEADER} ({exc.message})")
