"""The store's contract, for every backend (ARCHITECTURE.md, "The store")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import NameConflict, NotFound, VersionConflict
from swarmlet.manager.store import Action, Backend, Compacted, MemoryBackend, Op, OwnCommits, Store
from swarmlet.manager.store.encryption import Cipher, new_dek
from swarmlet.manager.store.sqlite import SqliteBackend
from swarmlet.models import Node, Service, ServiceSpec, Task, TaskState, TaskStatus, Version


def service(name: str, object_id: str | None = None) -> Service:
    return Service(id=object_id or f"id-{name}", spec=ServiceSpec(name=name))


@pytest.fixture(params=["memory", "sqlite", "sqlite-encrypted"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend: Backend
    if request.param == "memory":
        backend = MemoryBackend()
    elif request.param == "sqlite":
        backend = SqliteBackend(tmp_path / "s.db")
    else:
        backend = SqliteBackend(tmp_path / "s.db", Cipher(new_dek()))
    store = Store(backend, FakeClock())
    yield store
    store.close()


def test_create_sets_version_and_timestamps(store: Store) -> None:
    (created,) = store.commit([Op.create(service("web"))])
    assert created.version.index == store.revision == 1
    assert created.created_at is not None
    assert created.created_at == created.updated_at
    assert store.get(Service, "id-web") == created


def test_every_write_moves_the_one_revision(store: Store) -> None:
    store.commit([Op.create(service("a"))])
    store.commit([Op.create(Node(id="n1"))])
    node = store.get(Node, "n1")
    assert node.version.index == 2
    (updated,) = store.commit([Op.update(node.replace(status=node.status))])
    assert updated.version.index == store.revision == 3


def test_a_stale_update_is_refused_and_changes_nothing(store: Store) -> None:
    (created,) = store.commit([Op.create(service("web"))])
    store.commit([Op.update(created.replace(spec=ServiceSpec(name="web", labels={"a": "1"})))])
    revision = store.revision
    with pytest.raises(VersionConflict, match="update out of sequence"):
        store.commit([Op.update(created.replace(spec=ServiceSpec(name="web", labels={"b": "2"})))])
    assert store.revision == revision
    assert store.get(Service, "id-web").spec.labels == {"a": "1"}


def test_a_transaction_writes_all_or_nothing(store: Store) -> None:
    (web,) = store.commit([Op.create(service("web"))])
    with pytest.raises(NotFound):
        store.commit([Op.create(service("db")), Op.update(Node(id="missing"))])
    assert store.by_name(Service, "db") is None
    assert store.all(Service) == [web]
    assert store.revision == 1


def test_names_are_unique_per_kind(store: Store) -> None:
    store.commit([Op.create(service("web"))])
    with pytest.raises(NameConflict):
        store.commit([Op.create(service("web", "other-id"))])
    with pytest.raises(NameConflict):
        store.commit([Op.create(service("x", "i1")), Op.create(service("x", "i2"))])
    assert len(store.all(Service)) == 1


def test_a_name_freed_in_the_same_transaction_can_be_taken(store: Store) -> None:
    (web,) = store.commit([Op.create(service("web"))])
    store.commit([Op.delete(web), Op.create(service("web", "new-id"))])
    by_name = store.by_name(Service, "web")
    assert by_name is not None
    assert by_name.id == "new-id"


def test_secondary_indexes_follow_updates(store: Store) -> None:
    task = Task(id="t1", service_id="s1", node_id="n1")
    (task,) = store.commit([Op.create(task)])
    assert [t.id for t in store.tasks_of_node("n1")] == ["t1"]
    (moved,) = store.commit([Op.update(task.replace(node_id="n2"))])
    assert store.tasks_of_node("n1") == []
    assert store.tasks_of_node("n2") == [moved]
    assert store.tasks_of_service("s1") == [moved]
    store.commit([Op.delete(moved)])
    assert store.tasks_of_service("s1") == []


async def test_watch_yields_every_change_in_order(store: Store) -> None:
    snapshot = store.snapshot()
    (web,) = store.commit([Op.create(service("web"))])
    store.commit([Op.create(Task(id="t1", service_id=web.id)), Op.delete(web)])
    events = [await snapshot.watch.next() for _ in range(3)]
    assert [(e.action, e.obj.id, e.revision) for e in events if e] == [
        (Action.CREATE, "id-web", 1),
        (Action.CREATE, "t1", 2),
        (Action.DELETE, "id-web", 2),
    ]
    snapshot.watch.close()
    assert await snapshot.watch.next() is None


async def test_watch_from_a_past_revision_replays_history(store: Store) -> None:
    store.commit([Op.create(service("a"))])
    store.commit([Op.create(service("b"))])
    store.commit([Op.create(service("c"))])
    watch = store.watch(from_revision=1)
    assert [e.obj.id for e in watch.drain()] == ["id-b", "id-c"]
    watch.close()


def test_watch_from_before_the_history_is_refused() -> None:
    store = Store(MemoryBackend(), FakeClock())
    store.commit([Op.create(service("a"))])
    store._history.popleft()
    with pytest.raises(Compacted):
        store.watch(from_revision=0)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_sqlite_commits_survive_a_restart(tmp_path: Path, encrypted: bool) -> None:
    path = tmp_path / "store.db"
    cipher = Cipher(new_dek()) if encrypted else None
    first = Store(SqliteBackend(path, cipher), FakeClock())
    first.commit([Op.create(service("web")), Op.create(Node(id="n1"))])
    running = TaskStatus(state=TaskState.RUNNING, message="started")
    first.commit([Op.create(Task(id="t1", service_id="id-web", node_id="n1", status=running))])
    # Within one commit only an object's last op counts: created then deleted is not there,
    # deleted then created again is.
    made = Version(index=first.revision + 1)  # what the commit gives the node it creates
    first.commit([Op.create(Node(id="n2")), Op.delete(Node(id="n2", version=made))])
    first.commit([Op.delete(first.get(Node, "n1")), Op.create(Node(id="n1"))])
    expected = (first.revision, first.all(Service), first.all(Node), first.all(Task))
    first.close()

    again = Store(SqliteBackend(path, cipher), FakeClock())
    assert (again.revision, again.all(Service), again.all(Node), again.all(Task)) == expected
    assert again.tasks_of_node("n1")[0].status.state == TaskState.RUNNING
    again.close()


def test_own_commits_are_told_from_the_others_as_their_events_pass() -> None:
    own = OwnCommits()
    own.add(3)
    own.add(5)
    seen = [(revision, own.made(revision)) for revision in (1, 3, 3, 4, 5, 6)]
    assert seen == [(1, False), (3, True), (3, True), (4, False), (5, True), (6, False)]
    own.add(8)
    assert not own.made(7)
    assert own.made(8)
