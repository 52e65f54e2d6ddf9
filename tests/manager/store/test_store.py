"""The store's contract, for every backend (ARCHITECTURE.md, "The store"): memory, SQLite,
sealed SQLite and etcd (``conftest.store``). Revisions are asserted relative to where a test
starts: etcd's are global to the member, shared by the module's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import InvalidSpec, NameConflict, NotFound, VersionConflict
from swarmlet.manager.etcd import MemberConfig, client_tls
from swarmlet.manager.etcd.client import EtcdClient
from swarmlet.manager.store import (
    Action,
    Backend,
    Compacted,
    MemoryBackend,
    Op,
    OwnCommits,
    Store,
    Tx,
)
from swarmlet.manager.store.encryption import Cipher, new_dek
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.manager.store.sqlite import SqliteBackend
from swarmlet.models import Node, Service, ServiceSpec, Task, TaskState, TaskStatus


def service(name: str, object_id: str | None = None) -> Service:
    return Service(id=object_id or f"id-{name}", spec=ServiceSpec(name=name))


async def test_create_sets_version_and_timestamps(store: Store) -> None:
    before = store.revision
    commit = await store.update(lambda tx: tx.create(service("web")))
    (created,) = commit.objects
    assert commit.revision == store.revision == before + 1
    assert created.version.index == commit.revision
    assert created.created_at is not None
    assert created.created_at == created.updated_at
    assert store.get(Service, "id-web") == created


async def test_every_write_moves_the_one_revision_by_one(store: Store) -> None:
    before = store.revision
    await store.commit([Op.create(service("a"))])
    await store.commit([Op.create(Node(id="n1"))])
    node = store.get(Node, "n1")
    assert node.version.index == store.revision == before + 2
    (updated,) = await store.commit([Op.update(node.replace(status=node.status))])
    assert updated.version.index == store.revision == before + 3
    assert store.get(Service, "id-a").version.index == before + 1


async def test_a_stale_update_is_refused_and_changes_nothing(store: Store) -> None:
    (created,) = await store.commit([Op.create(service("web"))])
    labelled = created.replace(spec=ServiceSpec(name="web", labels={"a": "1"}))
    await store.commit([Op.update(labelled)])
    revision = store.revision
    stale = created.replace(spec=ServiceSpec(name="web", labels={"b": "2"}))
    with pytest.raises(VersionConflict, match="update out of sequence"):
        await store.commit([Op.update(stale)])
    assert store.revision == revision
    assert store.get(Service, "id-web").spec.labels == {"a": "1"}


async def test_a_transaction_writes_all_or_nothing(store: Store) -> None:
    (web,) = await store.commit([Op.create(service("web"))])
    revision = store.revision
    with pytest.raises(NotFound):
        await store.commit([Op.create(service("db")), Op.update(Node(id="missing"))])
    assert store.by_name(Service, "db") is None
    assert store.all(Service) == [web]
    assert store.revision == revision


async def test_names_are_unique_per_kind(store: Store) -> None:
    await store.commit([Op.create(service("web"))])
    with pytest.raises(NameConflict):
        await store.commit([Op.create(service("web", "other-id"))])
    with pytest.raises(NameConflict):
        await store.commit([Op.create(service("x", "i1")), Op.create(service("x", "i2"))])
    with pytest.raises(InvalidSpec, match="must not be empty"):
        await store.commit([Op.create(service("", "i3"))])
    assert len(store.all(Service)) == 1


async def test_a_name_freed_in_the_same_transaction_can_be_taken(store: Store) -> None:
    (web,) = await store.commit([Op.create(service("web"))])
    await store.commit([Op.delete(web), Op.create(service("web", "new-id"))])
    by_name = store.by_name(Service, "web")
    assert by_name is not None
    assert by_name.id == "new-id"
    # A rename frees the old name.
    await store.commit([Op.update(by_name.replace(spec=ServiceSpec(name="api")))])
    await store.commit([Op.create(service("web", "third-id"))])
    # And a name freed by a delete is free in the next one.
    await store.commit([Op.delete(store.get(Service, "third-id"))])
    await store.commit([Op.create(service("web", "fourth-id"))])
    assert {s.spec.name: s.id for s in store.all(Service)} == {"api": "new-id", "web": "fourth-id"}


async def test_secondary_indexes_follow_updates(store: Store) -> None:
    (task,) = await store.commit([Op.create(Task(id="t1", service_id="s1", node_id="n1"))])
    assert [t.id for t in store.tasks_of_node("n1")] == ["t1"]
    (moved,) = await store.commit([Op.update(task.replace(node_id="n2"))])
    assert store.tasks_of_node("n1") == []
    assert store.tasks_of_node("n2") == [moved]
    assert store.tasks_of_service("s1") == [moved]
    await store.commit([Op.delete(moved)])
    assert store.tasks_of_service("s1") == []


async def test_watch_yields_every_change_in_order(store: Store) -> None:
    snapshot = store.snapshot()
    start = snapshot.revision
    (web,) = await store.commit([Op.create(service("web"))])
    await store.commit([Op.create(Task(id="t1", service_id=web.id)), Op.delete(web)])
    events = [await snapshot.watch.next() for _ in range(3)]
    assert [(e.action, e.obj.id, e.revision - start) for e in events if e] == [
        (Action.CREATE, "id-web", 1),
        (Action.CREATE, "t1", 2),
        (Action.DELETE, "id-web", 2),
    ]
    assert [e.obj.version.index for e in events if e] == [start + 1, start + 2, start + 1]
    snapshot.watch.close()
    assert await snapshot.watch.next() is None


async def test_watch_from_a_past_revision_replays_history(store: Store) -> None:
    start = store.revision
    await store.commit([Op.create(service("a"))])
    await store.commit([Op.create(service("b"))])
    await store.commit([Op.create(service("c"))])
    watch = store.watch(from_revision=start + 1)
    assert [e.obj.id for e in watch.drain()] == ["id-b", "id-c"]
    watch.close()


async def test_watch_from_before_the_history_is_refused() -> None:
    store = Store(MemoryBackend(), FakeClock())
    await store.commit([Op.create(service("a"))])
    store._history.popleft()
    with pytest.raises(Compacted):
        store.watch(from_revision=0)


# Transactions


async def test_a_transaction_reads_its_own_writes(store: Store) -> None:
    (old,) = await store.commit([Op.create(service("old"))])
    (task,) = await store.commit([Op.create(Task(id="t1", service_id="id-old", node_id="n1"))])

    def fn(tx: Tx) -> list[str]:
        tx.create(service("web"))
        assert tx.get(Service, "id-web").spec.name == "web"
        assert tx.by_name(Service, "web") == tx.get(Service, "id-web")
        tx.delete(tx.get(Service, "id-old"))
        assert tx.find(Service, "id-old") is None
        assert tx.by_name(Service, "old") is None
        with pytest.raises(NotFound):
            tx.get(Service, "id-old")
        tx.update(task.replace(node_id="n2"))
        tx.create(Task(id="t2", service_id="id-old", node_id="n2"))
        assert tx.tasks_of_node("n1") == []
        assert sorted(t.id for t in tx.tasks_of_node("n2")) == ["t1", "t2"]
        assert sorted(t.id for t in tx.tasks_of_service("id-old")) == ["t1", "t2"]
        # The store itself is not written until fn returns.
        assert store.find(Service, "id-web") is None
        assert store.get(Service, "id-old") == old
        return [s.spec.name for s in tx.all(Service)]

    commit = await store.update(fn)
    assert commit.value == ["web"]
    assert [obj.id for obj in commit.objects] == ["id-web", "id-old", "t1", "t2"]
    assert all(obj.version.index == commit.revision for obj in commit.objects if obj.id != "id-old")
    assert store.by_name(Service, "web") is not None
    assert store.find(Service, "id-old") is None
    assert sorted(t.id for t in store.tasks_of_node("n2")) == ["t1", "t2"]


async def test_a_transaction_that_raises_writes_nothing(store: Store) -> None:
    await store.commit([Op.create(service("web"))])
    revision = store.revision

    def fn(tx: Tx) -> None:
        tx.create(service("api"))
        tx.delete(tx.get(Service, "id-web"))
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await store.update(fn)
    assert store.revision == revision
    assert [s.id for s in store.all(Service)] == ["id-web"]


async def test_a_transaction_that_writes_nothing_gives_its_value_at_the_revision(
    store: Store,
) -> None:
    await store.commit([Op.create(service("web"))])
    commit = await store.update(lambda tx: len(tx.all(Service)))
    assert (commit.revision, commit.objects, commit.value) == (store.revision, [], 1)


# Durability


def durable(kind: str, tmp_path: Path, cipher: Cipher | None, etcd: EtcdClient | None) -> Backend:
    if kind == "etcd":
        assert etcd is not None
        return EtcdBackend(etcd, cipher, b"/restart/" + tmp_path.name.encode() + b"/")
    return SqliteBackend(tmp_path / "store.db", cipher)


@pytest.mark.parametrize(
    ("kind", "encrypted"),
    [("sqlite", False), ("sqlite", True), ("etcd", False), ("etcd", True)],
    ids=["sqlite", "sqlite-encrypted", "etcd", "etcd-encrypted"],
)
async def test_commits_survive_a_restart(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, encrypted: bool
) -> None:
    etcd = None
    if kind == "etcd":
        member: MemberConfig = request.getfixturevalue("etcd_member")
        etcd = EtcdClient(member.client_url, client_tls(member))
    try:
        await restart(tmp_path, kind, Cipher(new_dek()) if encrypted else None, etcd)
    finally:
        if etcd is not None:
            await etcd.close()


async def restart(
    tmp_path: Path, kind: str, cipher: Cipher | None, etcd: EtcdClient | None
) -> None:
    first = await Store.open(durable(kind, tmp_path, cipher, etcd), FakeClock())
    await first.commit([Op.create(service("web")), Op.create(Node(id="n1"))])
    running = TaskStatus(state=TaskState.RUNNING, message="started")
    await first.commit(
        [Op.create(Task(id="t1", service_id="id-web", node_id="n1", status=running))]
    )

    # Within one commit only an object's last op counts: deleted then created again is there.
    await first.commit([Op.delete(first.get(Node, "n1")), Op.create(Node(id="n1"))])
    expected = (first.revision, first.all(Service), first.all(Node), first.all(Task))
    first.close()

    again = await Store.open(durable(kind, tmp_path, cipher, etcd), FakeClock())
    got = (again.revision, again.all(Service), again.all(Node), again.all(Task))
    assert got == expected
    assert again.tasks_of_node("n1")[0].status.state == TaskState.RUNNING
    assert again.by_name(Service, "web") == first.get(Service, "id-web")
    again.close()


async def test_own_commits_are_told_from_the_others_as_their_events_pass() -> None:
    own = OwnCommits()
    own.add(3)
    own.add(5)
    seen = [(revision, own.made(revision)) for revision in (1, 3, 3, 4, 5, 6)]
    assert seen == [(1, False), (3, True), (3, True), (4, False), (5, True), (6, False)]
    own.add(8)
    assert not own.made(7)
    assert own.made(8)
