"""The leader's side of the etcd store, on a real member: writes fenced on the leader's term,
the history compacted (on the fake clock), and a store behind a compaction loading again."""

from __future__ import annotations

import asyncio

import pytest

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock
from swarmlet.manager.etcd.client import Compare, Delete, EtcdClient, Put
from swarmlet.manager.etcd.compaction import Compaction, compaction_for, compaction_target
from swarmlet.manager.leadership import Term
from swarmlet.manager.store import Action, Op, Store, Tx
from swarmlet.manager.store.backend import Compacted, TermEnded
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.models import Service, ServiceSpec

WITHIN_S = 30.0


def service(name: str) -> Service:
    return Service(id=f"id-{name}", spec=ServiceSpec(name=name))


async def eventually(check: object, what: str) -> None:
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not {what}"
        await asyncio.sleep(0.01)


async def take_leader_key(client: EtcdClient, key: bytes, node_id: str) -> Term:
    """What the election does on winning (without a lease): the key, if absent."""
    made = await client.txn([Compare.absent(key)], [Put(key, node_id.encode())])
    assert made.succeeded
    return Term(node_id, revision=made.revision)


# Fencing


async def test_a_controllers_write_lands_only_while_its_term_lasts(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    backend = EtcdBackend(etcd_client, None, prefix)
    store = await Store.open(backend, FakeClock())
    try:
        term = await take_leader_key(etcd_client, backend.leader_key, "m1")
        fenced = store.fenced(term)
        during = await fenced.update(lambda tx: tx.create(service("during")))
        assert store.get(Service, "id-during") == during.objects[0]
        assert fenced.revision == store.revision  # one store: the same objects and revision

        # The term ends: the key goes (its lease ran out) and another manager's term makes it.
        await etcd_client.txn([], [Delete(backend.leader_key)])
        await take_leader_key(etcd_client, backend.leader_key, "m2")
        runs = []

        def create(tx: Tx) -> None:
            runs.append(1)
            tx.create(service("after"))

        with pytest.raises(TermEnded, match="made again at revision"):
            await fenced.update(create)
        assert runs == [1]  # refused once, not tried again
        assert store.by_name(Service, "after") is None
        stored = await etcd_client.range(backend.object_key("Service", "id-after"))
        assert stored.kvs == []

        # An API write (the store itself, on any manager) is not fenced.
        await store.update(lambda tx: tx.create(service("after")))
        assert store.by_name(Service, "after") is not None
    finally:
        store.close()


async def test_a_write_fenced_on_a_term_whose_key_is_gone_changes_nothing(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    backend = EtcdBackend(etcd_client, None, prefix)
    store = await Store.open(backend, FakeClock())
    try:
        web = (await store.update(lambda tx: tx.create(service("web")))).objects[0]
        term = await take_leader_key(etcd_client, backend.leader_key, "m1")
        await etcd_client.txn([], [Delete(backend.leader_key)])
        relabelled = web.replace(spec=web.spec.replace(labels={"a": "b"}))
        with pytest.raises(TermEnded, match="is gone"):
            await store.fenced(term).commit([Op.update(relabelled)])
        assert store.get(Service, "id-web") == web
    finally:
        store.close()


async def test_a_store_of_its_own_has_nothing_to_fence() -> None:
    store = Store(clock=FakeClock())
    assert store.fenced(Term("m1")) is store


# A store behind a compaction


async def test_a_store_behind_a_compaction_loads_again_and_its_watch_sees_the_difference(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    writer = await Store.open(EtcdBackend(etcd_client, None, prefix), FakeClock())
    behind_backend = EtcdBackend(etcd_client, None, prefix)
    behind = await Store.open(behind_backend, FakeClock())
    try:
        await writer.commit([Op.create(service("gone")), Op.create(service("changed"))])
        await eventually(lambda: behind.revision == writer.revision, "followed")
        # Cut off (its watch stopped) while the others delete, update, create, and compact.
        assert behind._follower is not None
        await cancel_and_wait(behind._follower)
        changed = writer.get(Service, "id-changed")
        await writer.commit([Op.delete(writer.get(Service, "id-gone"))])
        relabelled = changed.replace(spec=changed.spec.replace(labels={"v": "2"}))
        await writer.commit([Op.update(relabelled), Op.create(service("new"))])
        await backend_compact(etcd_client, writer.revision)

        watch = behind.watch()
        behind._follower = asyncio.create_task(behind._follow(behind_backend))
        await eventually(lambda: behind.revision >= writer.revision, "loaded again")
        events = {(e.action, e.obj.id, e.revision) for e in watch.drain()}
        assert events == {
            (Action.DELETE, "id-gone", behind.revision),
            (Action.UPDATE, "id-changed", behind.revision),
            (Action.CREATE, "id-new", behind.revision),
        }
        assert behind.get(Service, "id-changed") == writer.get(Service, "id-changed")
        assert behind.find(Service, "id-gone") is None
        # And it follows on, and writes.
        await behind.commit([Op.create(service("later"))])
        await eventually(lambda: writer.by_name(Service, "later") is not None, "seen")
    finally:
        writer.close()
        behind.close()


async def backend_compact(client: EtcdClient, revision: int) -> None:
    await client.compact(revision)
    with pytest.raises(Compacted):  # as a watch from before it is told
        await anext(EtcdBackend(client, None, b"/nothing/").follow(revision - 2))


# Compaction


@pytest.mark.parametrize(
    ("previous", "current", "compacted", "expected"),
    [
        (None, 500, 0, None),  # the first pass only notes the revision
        (100, 500, 0, 100),  # the history since the previous pass is kept
        (100, 20_500, 0, 10_500),  # but no more than 10,000 revisions
        (100, 500, 100, None),  # already done
        (100, 100, 0, 100),
    ],
)
def test_the_compaction_target(previous, current, compacted, expected):
    assert compaction_target(previous, current, compacted, keep=10_000) == expected


async def test_the_leader_compacts_every_interval_to_the_previous_pass(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    clock = FakeClock()
    backend = EtcdBackend(etcd_client, None, prefix)
    store = await Store.open(backend, clock)
    (compaction,) = compaction_for(store, clock)
    assert isinstance(compaction, Compaction)
    compaction = Compaction(store, clock, backend, interval=300, keep=5)
    running = asyncio.create_task(compaction.run())
    try:
        # The first pass notes the revision; nothing is compacted.
        noted = await backend.current_revision()
        await clock.advance(300)
        await eventually(lambda: compaction.noted is not None, "noted")
        assert compaction.noted == noted
        assert compaction.compacted == 0
        # Two writes (fewer than kept): the next pass compacts to the previous one's.
        for name in ("a", "b"):
            await store.commit([Op.create(service(name))])
        await clock.advance(299)
        await asyncio.sleep(0.1)
        assert compaction.compacted == 0  # not yet due
        await clock.advance(1)
        await eventually(lambda: compaction.compacted == noted, "compacted to the pass before")
        with pytest.raises(Compacted):
            await anext(backend.follow(noted - 2))  # from noted - 1
        # Ten writes (more than kept): no more than 5 revisions are kept.
        for index in range(10):
            await store.commit([Op.create(service(f"more-{index}"))])
        current = store.revision
        await clock.advance(300)
        await eventually(lambda: compaction.compacted == current - 5, "compacted to keep 5")
        # The store's own watch kept up, and writes on.
        await store.commit([Op.create(service("after"))])
        # A compaction etcd has done already (another leader's) is no error.
        await backend.compact(noted)
    finally:
        await cancel_and_wait(running)
        store.close()


async def test_a_store_of_its_own_is_not_compacted() -> None:
    assert compaction_for(Store(clock=FakeClock()), FakeClock()) == []
