"""``docker swarm init --force-new-cluster`` on a manager on etcd (``etcd_store``): the member's
argv with etcd's flag, the managers that are members no more, Swarm's lost quorum for every
request but those moby answers without a leader, and a member that lost its quorum started
alone from its data on real etcd, every key kept."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from swarmlet.api.backend import Endpoint
from swarmlet.clock import FakeClock, SystemClock
from swarmlet.daemon import etcd_store
from swarmlet.errors import NO_LEADER, Unavailable
from swarmlet.manager.api import cluster, lost_quorum
from swarmlet.manager.api.lost_quorum import (
    ANSWERED_WITHOUT_LEADER,
    LeaderRequired,
    require_leader,
)
from swarmlet.manager.etcd import (
    MemberConfig,
    MemberTLS,
    Peer,
    etcd_argv,
    joining_member,
    member_tls,
    new_cluster_member,
    write_member_tls,
)
from swarmlet.manager.etcd.config import forced
from swarmlet.manager.store import MemoryBackend, Op, Store
from swarmlet.manager.store.encryption import new_dek
from swarmlet.models import Cluster, ManagerStatus, Node, RootCA, Service, ServiceSpec
from swarmlet.pki.ca import new_root
from tests.etcd_fixtures import etcd_binary_or_skip, free_ports

NODE_ID = "node1id"


def _config(state_dir: Path) -> MemberConfig:
    client_port, peer_port = free_ports(2)
    return new_cluster_member(
        NODE_ID, state_dir, "127.0.0.1", "cluster1", client_port=client_port, peer_port=peer_port
    )


def test_the_forced_member_asks_etcd_for_a_new_cluster_once(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert "--force-new-cluster" not in etcd_argv(config)
    argv = etcd_argv(forced(config))
    assert argv.count("--force-new-cluster") == 1
    assert [a for a in argv if a != "--force-new-cluster"] == etcd_argv(config)
    # etcd.json never keeps the flag: the member's next start is an ordinary one.
    etcd_store.save_member(tmp_path, forced(config))
    assert etcd_store.load_member(tmp_path) == config


def _manager(node_id: str, leader: bool = False) -> Node:
    return Node(id=node_id, manager_status=ManagerStatus(leader=leader, addr=f"{node_id}:2377"))


async def test_the_other_managers_lose_their_manager_status() -> None:
    store = await Store.open(MemoryBackend(), FakeClock())
    ops = [Op.create(_manager("m1")), Op.create(_manager("m2", leader=True))]
    await store.commit([*ops, Op.create(_manager("m3")), Op.create(Node(id="w1"))])
    commit = await store.update(lambda tx: etcd_store.drop_lost_managers(tx, "m1"))
    assert commit.value == 2
    assert store.get(Node, "m1").manager_status == _manager("m1").manager_status
    assert [store.get(Node, n).manager_status for n in ("m2", "m3", "w1")] == [None] * 3


class _View:
    def __init__(self, error: Unavailable | None) -> None:
        self.error = error

    async def leader(self) -> str | None:
        if self.error is not None:
            raise self.error
        return None

    async def reachable(self) -> set[str]:
        return set()


async def _answer(request: web.Request) -> web.StreamResponse:
    return web.Response(text="answered")


async def test_without_an_etcd_leader_a_manager_answers_swarms_lost_quorum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lost_quorum, "ELECTION_S", 0.0)  # no election to wait for
    # Every handler answers: what is refused is refused by the backend.
    for endpoint in Endpoint:
        monkeypatch.setitem(cluster.HANDLERS, endpoint, _answer)
    store = await Store.open(MemoryBackend(), FakeClock())
    request = make_mocked_request("GET", "/services")
    no_leader = Unavailable("etcd at https://127.0.0.1:2379: etcdserver: no leader")
    backend = LeaderRequired(store, _View(no_leader))
    for endpoint in set(Endpoint) - ANSWERED_WITHOUT_LEADER:
        with pytest.raises(Unavailable) as refused:
            await backend.serve(endpoint, request)
        assert refused.value.message == (
            f"{NO_LEADER} (etcd at https://127.0.0.1:2379: etcdserver: no leader)"
        )
    # moby answers these without a leader (the error inside /info; the engine's networks).
    assert {Endpoint.INFO, Endpoint.NETWORK_LIST, Endpoint.EVENTS} == ANSWERED_WITHOUT_LEADER
    for endpoint in ANSWERED_WITHOUT_LEADER:
        answered = await backend.serve(endpoint, request)
        assert isinstance(answered, web.Response)
        assert answered.text == "answered"
    # With a leader (even between two terms of swarmlet's), every request is answered.
    with_leader = LeaderRequired(store, _View(None))
    for endpoint in Endpoint:
        answered = await with_leader.serve(endpoint, request)
        assert isinstance(answered, web.Response)
        assert answered.text == "answered"


class _Losing:
    """A member that holds the first read (it still counts on a leader it has lost) and
    refuses the next, as etcd does an election timeout later."""

    def __init__(self) -> None:
        self.asked = 0

    async def leader(self) -> str | None:
        self.asked += 1
        if self.asked == 1:
            await asyncio.Event().wait()
        raise Unavailable("etcd at https://127.0.0.1:2379: etcdserver: no leader")

    async def reachable(self) -> set[str]:
        return set()


async def test_a_read_etcd_holds_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lost_quorum, "ELECTION_S", 0.0)
    losing = _Losing()
    with pytest.raises(Unavailable) as refused:
        await require_leader(losing)
    assert refused.value.message.startswith(NO_LEADER)
    assert "etcdserver: no leader" in refused.value.message
    assert losing.asked == 2


class _Electing:
    """A member whose cluster elects a leader: two refusals, then answers."""

    def __init__(self) -> None:
        self.asked = 0

    async def leader(self) -> str | None:
        self.asked += 1
        if self.asked <= 2:
            raise Unavailable("etcd at https://127.0.0.1:2379: etcdserver: no leader")
        return "node2id"

    async def reachable(self) -> set[str]:
        return set()


async def test_a_request_waits_for_an_election() -> None:
    electing = _Electing()
    await require_leader(electing)  # as SwarmKit waits for a raft leader
    assert electing.asked == 3


def _member_tls(config: MemberConfig, root_ca: RootCA) -> MemberTLS:
    return member_tls(
        root_ca,
        node_id=config.name,
        cluster_id="cluster1",
        address="127.0.0.1",
        expiry=timedelta(days=1),
        now=datetime.now(UTC),
    )


async def _refused(etcd: etcd_store.EtcdStore) -> str:
    """``require_leader``'s refusal, once the member knows it lost its leader."""
    for _ in range(100):
        try:
            await require_leader(etcd.election)
        except Unavailable as exc:
            return exc.message
        await SystemClock().sleep(0.1)
    raise AssertionError("the member kept its leader")


async def _second_member_dies(
    manager: etcd_store.EtcdStore, state_dir: Path, root_ca: RootCA
) -> None:
    """A second, voting member added to ``manager``'s cluster, started and stopped: one
    member of two is no majority."""
    clock = SystemClock()
    client_port, peer_port = free_ports(2)
    _, members = await manager.member.client.member_add(f"https://127.0.0.1:{peer_port}")
    config = joining_member(
        "node2id", state_dir, "127.0.0.1", "cluster1", [p for m in members for p in m.peers()],
        client_port=client_port, peer_port=peer_port,
    )  # fmt: skip
    write_member_tls(config, _member_tls(config, root_ca))
    second = await etcd_store.Member.start(config, clock)
    await second.stop()


async def test_a_member_without_quorum_starts_again_alone_with_its_data(tmp_path: Path) -> None:
    etcd_binary_or_skip()
    clock = SystemClock()
    root = new_root(datetime.now(UTC))
    root_ca = RootCA(ca_cert=root.cert_pem, ca_key=root.key_pem)
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = _config(first_dir)
    write_member_tls(first, _member_tls(first, root_ca))
    etcd_store.save_member(first_dir, first)
    dek = new_dek()
    manager = await etcd_store.EtcdStore.open(first, clock, dek)
    opened = [manager]  # closed after, whatever happens
    try:
        web_service = Service(id="s1", spec=ServiceSpec(name="web"))
        await manager.store.commit(
            [
                Op.create(Cluster(id="cluster1", root_ca=root_ca)),
                Op.create(web_service),
                Op.create(_manager(NODE_ID, leader=True)),
                Op.create(_manager("node2id")),
            ]
        )
        # A second member joins, then dies: the first has no leader.
        await _second_member_dies(manager, second_dir, root_ca)
        assert (await _refused(manager)).startswith(NO_LEADER)
        with pytest.raises(Unavailable):
            await manager.store.commit([Op.create(Service(id="s2", spec=ServiceSpec(name="x")))])

        await manager.close()
        opened.remove(manager)
        alone = await etcd_store.force_new_cluster(first, clock, dek)
        opened.append(alone)
        members = await alone.member.client.member_list()
        assert [m.name for m in members] == [NODE_ID]
        assert alone.store.get(Service, "s1").spec == web_service.spec
        assert alone.store.get(Node, "node2id").manager_status is None
        assert alone.store.get(Node, NODE_ID).manager_status is not None
        # The member runs as always again, and etcd.json names it alone.
        pid = alone.member.pid
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--force-new-cluster" not in cmdline
        single = replace(first, initial_cluster=(Peer(NODE_ID, first.peer_url),))
        assert etcd_store.load_member(first_dir) == single
        await alone.store.commit([Op.create(Service(id="s3", spec=ServiceSpec(name="after")))])
        assert alone.store.by_name(Service, "after") is not None
    finally:
        for running in opened:
            await running.close()
