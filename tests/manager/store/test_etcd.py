"""The store on etcd as several managers use it: two ``Store``s on one etcd and prefix, sealed
values, the watch across a restart of the member and past a compaction, and a scheduler's
pass of 10,000 tasks in one transaction."""

from __future__ import annotations

import asyncio
import base64
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import CannotDecrypt, NameConflict, Unavailable, VersionConflict
from swarmlet.manager.etcd import MemberConfig, client_tls
from swarmlet.manager.etcd.client import EtcdClient, Put, prefix_end
from swarmlet.manager.store import Change, Compacted, Op, Store, Tx
from swarmlet.manager.store.encryption import Cipher, new_dek
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.models import (
    ContainerSpec,
    Network,
    NetworkAttachment,
    NetworkAttachmentConfig,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.models.network import IPAMConfig, NetworkIPAM
from swarmlet.models.secret import Secret, SecretSpec
from swarmlet.pki.ca import new_root
from tests.etcd_fixtures import etcd_binary_or_skip, free_ports, one_member

MARKER = "plaintext-marker-7f3a9c"
WITHIN_S = 30.0


class GatedBackend(EtcdBackend):
    """Holds back the changes it streams while ``gate`` is clear: a manager whose cache is
    behind the others' writes."""

    def __init__(self, client: EtcdClient, cipher: Cipher | None, prefix: bytes) -> None:
        super().__init__(client, cipher, prefix)
        self.gate = asyncio.Event()
        self.gate.set()

    def follow(self, from_revision: int) -> AsyncIterator[tuple[int, list[Change]]]:
        return self._gated(from_revision)

    async def _gated(self, from_revision: int) -> AsyncIterator[tuple[int, list[Change]]]:
        async for item in super().follow(from_revision):
            await self.gate.wait()
            yield item


@dataclass
class Managers:
    one: Store
    other: Store
    other_backend: GatedBackend
    cipher: Cipher


@pytest.fixture
async def managers(etcd_client: EtcdClient, prefix: bytes) -> AsyncIterator[Managers]:
    """Two managers' stores on the same etcd and prefix, sealed with the same key."""
    cipher = Cipher(new_dek())
    one = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    gated = GatedBackend(etcd_client, cipher, prefix)
    other = await Store.open(gated, FakeClock())
    yield Managers(one, other, gated, cipher)
    gated.gate.set()
    one.close()
    other.close()


def service(name: str, object_id: str | None = None, **labels: str) -> Service:
    return Service(id=object_id or f"id-{name}", spec=ServiceSpec(name=name, labels=labels))


async def until_seen(store: Store, revision: int) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while store.revision < revision:
        assert asyncio.get_running_loop().time() < deadline, f"revision {revision} not seen"
        await asyncio.sleep(0.01)


async def test_a_write_through_one_manager_is_seen_by_the_others_reads_and_watch(
    managers: Managers,
) -> None:
    watch = managers.other.watch()
    commit = await managers.one.update(lambda tx: tx.create(service("web")))
    event = await asyncio.wait_for(watch.next(), WITHIN_S)
    assert event is not None
    assert (event.action.value, event.revision, event.obj) == (
        "create",
        commit.revision,
        commit.objects[0],
    )
    assert managers.other.get(Service, "id-web") == commit.objects[0]
    assert managers.other.by_name(Service, "web") == commit.objects[0]
    assert managers.other.revision == commit.revision
    # And the other way round, a delete.
    await managers.other.commit([Op.delete(managers.other.get(Service, "id-web"))])
    await until_seen(managers.one, managers.other.revision)
    assert managers.one.all(Service) == []
    watch.close()


async def test_a_write_from_a_stale_cache_runs_again_on_the_fresh_object(
    managers: Managers,
) -> None:
    (web,) = await managers.one.commit([Op.create(service("web"))])
    await until_seen(managers.other, web.version.index)
    managers.other_backend.gate.clear()  # the other manager's cache falls behind
    (labelled,) = await managers.one.commit(
        [Op.update(web.replace(spec=service("web", a="1").spec))]
    )
    runs: list[dict[str, str]] = []

    def add_label(tx: Tx) -> None:
        current = tx.get(Service, "id-web")
        runs.append(current.spec.labels)
        if len(runs) == 1:  # the cache, stale: its write is refused, and fn runs again
            managers.other_backend.gate.set()
        labels = {**current.spec.labels, "b": "2"}
        tx.update(current.replace(spec=ServiceSpec(name="web", labels=labels)))

    commit = await managers.other.update(add_label)
    assert runs == [{}, {"a": "1"}]
    (written,) = commit.objects
    assert written.version.index == commit.revision > labelled.version.index
    await until_seen(managers.one, commit.revision)
    assert managers.one.get(Service, "id-web").spec.labels == {"a": "1", "b": "2"}


async def test_a_stale_version_is_a_version_conflict_through_either_manager(
    managers: Managers,
) -> None:
    (web,) = await managers.one.commit([Op.create(service("web"))])
    await until_seen(managers.other, web.version.index)
    managers.other_backend.gate.clear()
    await managers.one.commit([Op.update(web.replace(spec=service("web", a="1").spec))])
    # The other's cache still holds ``web`` at its version: only etcd can refuse it.
    asyncio.get_running_loop().call_soon(managers.other_backend.gate.set)
    with pytest.raises(VersionConflict, match="update out of sequence"):
        await managers.other.commit([Op.update(web.replace(spec=service("web", b="2").spec))])
    with pytest.raises(VersionConflict):
        await managers.one.commit([Op.delete(web)])
    assert managers.other.get(Service, "id-web").spec.labels == {"a": "1"}


async def test_a_name_taken_through_one_manager_is_refused_through_the_other(
    managers: Managers,
) -> None:
    await managers.one.commit([Op.create(Service(id="id-0", spec=ServiceSpec(name="boot")))])
    await until_seen(managers.other, managers.one.revision)
    managers.other_backend.gate.clear()
    await managers.one.commit([Op.create(service("web", "id-1"))])
    # The other's cache has no "web" yet: the txn's compare on the name key refuses it.
    asyncio.get_running_loop().call_soon(managers.other_backend.gate.set)
    with pytest.raises(NameConflict, match="web"):
        await managers.other.commit([Op.create(service("web", "id-2"))])
    assert [s.id for s in managers.other.all(Service) if s.spec.name == "web"] == ["id-1"]
    # Released through one, the name is free through the other.
    await managers.one.commit([Op.delete(managers.one.get(Service, "id-1"))])
    await until_seen(managers.other, managers.one.revision)
    (taken,) = await managers.other.commit([Op.create(service("web", "id-2"))])
    await until_seen(managers.one, taken.version.index)
    assert managers.one.by_name(Service, "web") == taken


async def test_a_reload_gives_the_same_objects_and_versions(
    managers: Managers, etcd_client: EtcdClient, prefix: bytes
) -> None:
    await managers.one.commit([Op.create(service(f"s{i}")) for i in range(1_200)])
    await managers.other.commit([Op.create(Task(id="t1", service_id="id-s1", node_id="n1"))])
    await until_seen(managers.one, managers.other.revision)
    # More than two pages of ``load``: every page at the first one's revision.
    again = await Store.open(EtcdBackend(etcd_client, managers.cipher, prefix), FakeClock())
    assert again.revision == managers.one.revision
    for kind in (Service, Task):
        assert sorted(again.all(kind), key=lambda o: o.id) == sorted(
            managers.one.all(kind), key=lambda o: o.id
        )
    assert again.tasks_of_node("n1")[0].id == "t1"
    again.close()


# Sealed values


async def test_the_etcd_data_holds_no_plain_text(etcd_client: EtcdClient, prefix: bytes) -> None:
    cipher = Cipher(new_dek())
    backend = EtcdBackend(etcd_client, cipher, prefix)
    store = await Store.open(backend, FakeClock())
    (web,) = await store.commit([Op.create(service("web", note=MARKER))])
    store.close()
    everything = await etcd_client.range(prefix, prefix_end(prefix))
    assert [kv.key for kv in everything.kvs] == [
        prefix + b"n/Service/web",
        prefix + b"o/Service/id-web",
    ]
    name, value = everything.kvs
    assert name.value == b"id-web"
    assert value.mod_revision == web.version.index
    assert MARKER.encode() not in value.value
    assert b'"Labels"' not in value.value
    # Compressed inside the seal (a secret's is not: see the next test).
    opened = zlib.decompress(cipher.open(value.value, b"Service/id-web"))
    assert opened.startswith(b'{"ID":"id-web"')


async def test_a_secret_is_sealed_without_compression(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    # Compressing what an attacker partly chooses (its labels) with what it must not learn
    # (its data) would let the ciphertext's length tell about the data.
    cipher = Cipher(new_dek())
    store = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    secret = Secret(id="s1", spec=SecretSpec(name="pw", data=base64.b64encode(b"hunter2").decode()))
    (written,) = await store.commit([Op.create(secret)])
    store.close()
    value = await etcd_client.get(prefix + b"o/Secret/s1")
    assert value is not None
    assert cipher.open(value, b"Secret/s1").startswith(b'{"ID":"s1"')
    again = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    assert again.get(Secret, "s1") == written
    again.close()


async def test_without_a_cipher_the_marker_is_there(etcd_client: EtcdClient, prefix: bytes) -> None:
    """The check above can see a marker: an unsealed store shows it."""
    store = await Store.open(EtcdBackend(etcd_client, None, prefix), FakeClock())
    await store.commit([Op.create(service("web", note=MARKER))])
    store.close()
    assert MARKER.encode() in (await etcd_client.get(prefix + b"o/Service/id-web") or b"")


async def test_sealed_values_open_only_with_their_key_and_where_they_were_written(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    dek = new_dek()
    store = await Store.open(EtcdBackend(etcd_client, Cipher(dek), prefix), FakeClock())
    await store.commit([Op.create(service("web")), Op.create(service("api"))])
    store.close()
    with pytest.raises(CannotDecrypt, match="Service id-api: cannot decrypt"):
        await Store.open(EtcdBackend(etcd_client, Cipher(new_dek()), prefix), FakeClock())
    with pytest.raises(CannotDecrypt, match="Service id-api is encrypted"):
        await Store.open(EtcdBackend(etcd_client, None, prefix), FakeClock())
    sealed = await etcd_client.get(prefix + b"o/Service/id-web")
    assert sealed is not None
    await etcd_client.put(prefix + b"o/Service/id-api", sealed)
    with pytest.raises(CannotDecrypt, match="Service id-api"):
        await Store.open(EtcdBackend(etcd_client, Cipher(dek), prefix), FakeClock())
    await etcd_client.put(prefix + b"o/Service/id-api", b'{"ID": "id-api"}')
    with pytest.raises(CannotDecrypt, match="Service id-api is stored unencrypted"):
        await Store.open(EtcdBackend(etcd_client, Cipher(dek), prefix), FakeClock())


# The watch


async def test_the_watch_yields_revisions_that_changed_only_other_keys(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    backend = EtcdBackend(etcd_client, None, prefix)
    start, _ = await backend.load()
    stream = backend.follow(start)
    await etcd_client.txn([], [Put(prefix + b"leader", b"node1")])
    revision = await backend.commit([])
    assert await asyncio.wait_for(anext(stream), WITHIN_S) == (start + 1, [])
    assert revision == start + 1  # an empty txn writes nothing: the revision as it is
    backend.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), WITHIN_S)


async def test_a_compacted_start_is_raised_and_the_store_loads_again(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    backend = EtcdBackend(etcd_client, None, prefix)
    start, _ = await backend.load()
    await etcd_client.put(prefix + b"x", b"1")
    await etcd_client.compact(await etcd_client.put(prefix + b"x", b"2"))
    with pytest.raises(Compacted):
        await asyncio.wait_for(anext(backend.follow(start)), WITHIN_S)
    # A store that follows from there loads the backend again, and writes on
    # (tests/manager/store/test_etcd_leader.py: what its watchers see).
    store = Store(backend, FakeClock())
    store._follower = asyncio.create_task(store._follow(backend))
    await asyncio.wait_for(store.commit([Op.create(service("web"))]), WITHIN_S)
    assert store.by_name(Service, "web") is not None
    store.close()


async def test_the_watch_comes_back_after_the_member_restarts(tmp_path: Path) -> None:
    binary = etcd_binary_or_skip()
    root = new_root(datetime.now(UTC))
    ports = (free_ports(2)[0], free_ports(2)[1])
    state = tmp_path / "member"
    with one_member(binary, root, state, ports) as member:
        writer = client_of(member)
        store = await Store.open(EtcdBackend(writer, None, b"/s/"), FakeClock())
        await store.commit([Op.create(service("before"))])
    try:
        # The member is down: the store's watch dropped and tries again, backing off.
        await asyncio.sleep(0.5)
        with one_member(binary, root, state, ports) as member:
            async with client_of(member) as other:
                # Another manager writes, through a client of its own.
                second = await Store.open(EtcdBackend(other, None, b"/s/"), FakeClock())
                assert second.get(Service, "id-before") == store.get(Service, "id-before")
                (after,) = await second.commit([Op.create(service("after"))])
                await until_seen(store, after.version.index)
                assert store.get(Service, "id-after") == after
                second.close()
                store.close()  # while the member runs: its stream ends, no retry under way
                await asyncio.sleep(0)
    finally:
        store.close()
        await writer.close()


def client_of(member: MemberConfig) -> EtcdClient:
    return EtcdClient(member.client_url, client_tls(member))


# A scheduler's pass


def placed_tasks(count: int) -> list[Task]:
    """Tasks as the scheduler writes them: assigned to a node, on an overlay network."""
    network = Network(
        id="net-frontend-0000000000001",
        name="frontend",
        labels={"com.docker.stack.namespace": "shop"},
        ipam=NetworkIPAM(config=[IPAMConfig(subnet="10.0.1.0/24", gateway="10.0.1.1")]),
        vni=4097,
    )
    spec = TaskSpec(
        container_spec=ContainerSpec(
            image="registry.local/shop/web:1.4.2@sha256:" + "ab" * 32,
            env=["MODE=production", "LOG_LEVEL=info", "UPSTREAM=http://api:8080"],
            labels={"com.docker.stack.namespace": "shop"},
        ),
        networks=[NetworkAttachmentConfig(target=network.id, aliases=["web"])],
    )
    return [
        Task(
            id=f"task{i:021d}",
            service_id="svc-web-000000000000000001",
            service_name="shop_web",
            slot=i + 1,
            node_id=f"node{i % 1000:021d}",
            spec=spec,
            status=TaskStatus(state=TaskState.ASSIGNED, message="scheduler assigned task to node"),
            desired_state=TaskState.RUNNING,
            networks_attachments=[
                NetworkAttachment(network=network, addresses=[f"10.0.{i // 250}.{i % 250 + 2}/24"])
            ],
        )
        for i in range(count)
    ]


async def test_one_transaction_of_10000_placed_tasks(
    etcd_client: EtcdClient, prefix: bytes
) -> None:
    cipher = Cipher(new_dek())
    store = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    tasks = placed_tasks(10_000)
    began = time.perf_counter()
    commit = await store.commit([Op.create(task) for task in tasks])
    took = time.perf_counter() - began
    print(f"10,000 tasks in one etcd transaction, sealed: {took:.2f} s")
    assert len(commit) == 10_000
    assert len(store.tasks_of_node("node" + "0" * 21)) == 10
    assert {t.version.index for t in store.all(Task)} == {store.revision}
    # And again, all of them updated (the agents' reports, batched), then read back whole.
    began = time.perf_counter()
    running = TaskStatus(state=TaskState.RUNNING, message="started")
    await store.commit([Op.update(task.replace(status=running)) for task in store.all(Task)])
    took = time.perf_counter() - began
    print(f"10,000 task updates in one etcd transaction: {took:.2f} s")
    store.close()
    again = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    assert len(again.all(Task)) == 10_000
    assert {t.status.state for t in again.all(Task)} == {TaskState.RUNNING}
    again.close()


async def test_a_member_starts_again_after_a_scheduler_sized_transaction(tmp_path: Path) -> None:
    # etcd 3.4 keeps a txn as one entry of its log and cannot read back one over 10 MB when
    # it starts: the values are compressed before they are sealed, so 10,000 tasks stay far
    # under it, and the member refuses outright what would not (``--max-request-bytes``).
    binary = etcd_binary_or_skip()
    root = new_root(datetime.now(UTC))
    ports = (free_ports(2)[0], free_ports(2)[1])
    state = tmp_path / "member"
    cipher = Cipher(new_dek())
    with one_member(binary, root, state, ports) as member:
        async with client_of(member) as client:
            store = await Store.open(EtcdBackend(client, cipher, b"/s/"), FakeClock())
            await store.commit([Op.create(task) for task in placed_tasks(10_000)])
            store.close()
    with one_member(binary, root, state, ports) as member:
        async with client_of(member) as client:
            again = await Store.open(EtcdBackend(client, cipher, b"/s/"), FakeClock())
            assert len(again.all(Task)) == 10_000
            again.close()


async def test_a_write_etcd_cannot_take_is_swarms_lost_quorum(tmp_path: Path) -> None:
    binary = etcd_binary_or_skip()
    root = new_root(datetime.now(UTC))
    ports = (free_ports(2)[0], free_ports(2)[1])
    with one_member(binary, root, tmp_path / "member", ports) as member:
        client = client_of(member)
        store = await Store.open(EtcdBackend(client, Cipher(new_dek()), b"/s/"), FakeClock())
        await store.commit([Op.create(service("before"))])
    try:
        # The member is gone (as when too few managers are online): the write is refused
        # with Swarm's words, and nothing is written.
        with pytest.raises(Unavailable, match=r"^The swarm does not have a leader\. "):
            await store.commit([Op.create(service("after"))])
        assert store.by_name(Service, "after") is None
    finally:
        store.close()
        await client.close()
