"""Moving a swarm's store from SQLite to etcd: every object written into an empty etcd as it is.

When a second manager joins, the sole manager's store (SQLite) moves to a new etcd cluster
(docs/store.md, "Moving to etcd"). Each object keeps its ID, its timestamps and its spec; its
``Version.Index`` becomes its key's ``mod_revision``, as every object's on etcd. The objects
are written through the backend's own transactions (``EtcdBackend.commit``, each object new:
its key and its unique name must be absent), so their keys, values and name keys are exactly
what the backend writes for a create. Transactions hold at most ``MOVE_BATCH`` objects and
``MOVE_BATCH_BYTES`` of JSON, under etcd's request limit.

A move goes only into an etcd holding nothing under the prefix, so two moves never mix: a move
interrupted halfway is started again from a new member with empty data (the daemon's part),
and one started again on the half-written etcd is refused (``MoveRefused``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.client import EtcdClient, prefix_end
from swarmlet.manager.store.backend import Write
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.manager.store.events import Action
from swarmlet.manager.store.store import KINDS, Store
from swarmlet.models import StoredObject

# Objects per transaction: a put and a compare each, and a compare and a put per unique name.
MOVE_BATCH = 5_000
# JSON bytes per transaction before compression (tasks compress about sixfold, a secret not at
# all): well under etcd's request limit (``config.MAX_REQUEST_BYTES``, 8 MiB).
MOVE_BATCH_BYTES = 4 * 1024 * 1024


class MoveRefused(Unavailable):
    """The etcd to move into already holds keys under the prefix."""


def objects_of(store: Store) -> list[StoredObject]:
    """Every object of the store, kind by kind (the cluster first), each kind by ID."""
    order = sorted(KINDS.values(), key=lambda kind: (kind.__name__ != "Cluster", kind.__name__))
    return [obj for kind in order for obj in sorted(store.all(kind), key=lambda o: o.id)]


def batches(
    objects: Sequence[StoredObject],
    sizes: Sequence[int],
    max_objects: int = MOVE_BATCH,
    max_bytes: int = MOVE_BATCH_BYTES,
) -> Iterator[list[StoredObject]]:
    """``objects`` in order, cut into runs of at most ``max_objects`` objects and
    ``max_bytes`` (``sizes``: each object's); an object larger than ``max_bytes`` alone."""
    batch: list[StoredObject] = []
    held = 0
    for obj, size in zip(objects, sizes, strict=True):
        if batch and (len(batch) >= max_objects or held + size > max_bytes):
            yield batch
            batch, held = [], 0
        batch.append(obj)
        held += size
    if batch:
        yield batch


def creation_of(obj: StoredObject) -> Write:
    """The object written as new, with its unique name claimed."""
    return Write(Action.CREATE, obj, 0, None, Store.name_of(obj))


async def move_store(
    store: Store, client: EtcdClient, backend: EtcdBackend, prefix: bytes = b"/swarmlet/"
) -> int:
    """Write every object of ``store`` into the etcd behind ``client`` (through ``backend``,
    on ``prefix``); returns how many. Nothing may write to ``store`` meanwhile: a write that
    lands all the same fails the move. Raises MoveRefused when etcd holds keys under the
    prefix or ``store`` was written, and Unavailable when etcd does not take a write
    (nothing is undone: that etcd is thrown away, and the move starts again)."""
    held = await client.range(prefix, prefix_end(prefix), limit=1)
    if held.kvs:
        raise MoveRefused(
            f"etcd already holds keys under {prefix.decode()}: a store moves into an empty one"
        )
    revision = store.revision
    objects = objects_of(store)
    sizes = [len(obj.model_dump_json(by_alias=True, exclude_none=True)) for obj in objects]
    for batch in batches(objects, sizes):
        await backend.commit([creation_of(obj) for obj in batch])
    if store.revision != revision:
        raise MoveRefused("the store was written while it moved: the move starts again")
    return len(objects)
