"""A SQLite store moved into etcd (``move.py``): every object kept field for field but its
version, names claimed as the etcd backend claims them, transactions cut to size, and a move
into an etcd that holds keys refused (an interrupted move never mixes with a new one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import NameConflict
from swarmlet.manager.etcd.client import EtcdClient
from swarmlet.manager.store import Store, Tx
from swarmlet.manager.store.encryption import Cipher, new_dek
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.manager.store.move import MoveRefused, batches, move_store, objects_of
from swarmlet.manager.store.sqlite import SqliteBackend
from swarmlet.models import (
    Cluster,
    ClusterSpec,
    Config,
    ConfigSpec,
    ContainerSpec,
    Network,
    Node,
    NodeRole,
    NodeSpec,
    Secret,
    SecretSpec,
    Service,
    ServiceSpec,
    StoredObject,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)

TASKS = 6_000  # more than one transaction's worth (MOVE_BATCH)


def _without_version(obj: StoredObject) -> StoredObject:
    return obj.replace(version=Version())


async def _filled(path: Path, cipher: Cipher) -> Store:
    """A sealed SQLite store with one object of each kind and many tasks, at a clock some
    hours on (timestamps that a move must keep, not make again)."""
    clock = FakeClock(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    store = await Store.open(SqliteBackend(path, cipher), clock)
    spec = ServiceSpec(
        name="web", task_template=TaskSpec(container_spec=ContainerSpec(image="busybox"))
    )

    def fill(tx: Tx) -> None:
        tx.create(Cluster(id="c1", spec=ClusterSpec(name="default")))
        tx.create(Network(id="net1", name="front"))
        tx.create(Node(id="n1", spec=NodeSpec(role=NodeRole.MANAGER)))
        tx.create(Service(id="s1", spec=spec))
        tx.create(Secret(id="sec1", spec=SecretSpec(name="pw", data=b"hunter2")))
        tx.create(Config(id="cfg1", spec=ConfigSpec(name="conf", data=b"a=1")))

    await store.update(fill)
    await clock.advance(timedelta(hours=3).total_seconds())

    def tasks(tx: Tx) -> None:
        for i in range(TASKS):
            tx.create(
                Task(
                    id=f"t{i:05d}",
                    service_id="s1",
                    node_id="n1",
                    slot=i + 1,
                    status=TaskStatus(state=TaskState.RUNNING, message="started"),
                )
            )

    await store.update(tasks)
    return store


@pytest.fixture
async def moved(
    tmp_path: Path, etcd_client: EtcdClient, prefix: bytes
) -> AsyncIterator[tuple[Store, Store]]:
    cipher = Cipher(new_dek())
    sqlite = await _filled(tmp_path / "store.db", cipher)
    # The backend of the move is the move's alone; the store on etcd opens its own.
    count = await move_store(sqlite, etcd_client, EtcdBackend(etcd_client, cipher, prefix), prefix)
    assert count == TASKS + 6
    on_etcd = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    yield sqlite, on_etcd
    sqlite.close()
    on_etcd.close()


async def test_every_object_is_kept_field_for_field(moved: tuple[Store, Store]) -> None:
    sqlite, on_etcd = moved
    before = {(type(o), o.id): _without_version(o) for o in objects_of(sqlite)}
    after = {(type(o), o.id): _without_version(o) for o in objects_of(on_etcd)}
    assert after == before
    # Timestamps are the objects' own: the tasks were made three hours after the service.
    service, task = on_etcd.get(Service, "s1"), on_etcd.get(Task, "t00000")
    assert task.created_at is not None
    assert service.created_at is not None
    assert task.created_at - service.created_at == timedelta(hours=3)
    assert on_etcd.get(Secret, "sec1").spec.data == b"hunter2"
    # Every version is etcd's now: the revision of the key's write, at most the store's.
    assert all(0 < o.version.index <= on_etcd.revision for o in objects_of(on_etcd))


async def test_names_are_claimed_on_etcd(moved: tuple[Store, Store]) -> None:
    _, on_etcd = moved
    assert on_etcd.by_name(Service, "web") == on_etcd.get(Service, "s1")
    spec = on_etcd.get(Service, "s1").spec
    with pytest.raises(NameConflict):
        await on_etcd.update(lambda tx: tx.create(Service(id="s2", spec=spec)))
    # And the moved store takes writes as any store on etcd.
    commit = await on_etcd.update(
        lambda tx: tx.update(
            tx.get(Service, "s1").replace(spec=spec.model_copy(update={"name": "api"}))
        )
    )
    assert commit.objects[0].version.index == commit.revision


async def test_a_move_into_an_etcd_holding_keys_is_refused(
    moved: tuple[Store, Store], etcd_client: EtcdClient, prefix: bytes
) -> None:
    sqlite, on_etcd = moved
    revision = on_etcd.revision
    with pytest.raises(MoveRefused):
        await move_store(sqlite, etcd_client, EtcdBackend(etcd_client, None, prefix), prefix)
    assert (await etcd_client.range(prefix, limit=1)).revision == revision


def test_batches_hold_at_most_so_many_objects_and_bytes() -> None:
    objects: list[StoredObject] = [Node(id=f"n{i}") for i in range(10)]
    by_count = list(batches(objects, [1] * 10, max_objects=4, max_bytes=100))
    assert [len(b) for b in by_count] == [4, 4, 2]
    by_bytes = list(batches(objects, [30] * 10, max_objects=100, max_bytes=100))
    assert [len(b) for b in by_bytes] == [3, 3, 3, 1]
    # An object over the limit goes alone; nothing is lost or reordered.
    sizes = [10, 500, 10, 10]
    assert [len(b) for b in batches(objects[:4], sizes, max_objects=9, max_bytes=100)] == [1, 1, 2]
    assert [o for b in by_bytes for o in b] == objects
