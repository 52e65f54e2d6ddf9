"""A manager whose store is on etcd (``etcd_store.py``): ``etcd.json`` written and read back,
a move that stopped before ``etcd.json`` undone, leaving's files, and a daemon that starts its
member and opens its store on it, on a real etcd member on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from swarmlet.clock import SystemClock
from swarmlet.daemon import etcd_store
from swarmlet.daemon import state as identity_file
from swarmlet.daemon.control import NodeControl
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.etcd import (
    MemberConfig,
    MemberTLS,
    joining_member,
    member_tls,
    new_cluster_member,
    write_member_tls,
)
from swarmlet.manager.etcd.election import Election
from swarmlet.manager.etcd.join import MemberRequest
from swarmlet.manager.store import Op, Store
from swarmlet.manager.store.encryption import Cipher, create_key_file, new_dek
from swarmlet.manager.store.sqlite import SqliteBackend
from swarmlet.models import Cluster, Node, NodeRole, RootCA, Service, ServiceSpec
from swarmlet.pki import read_certificate
from swarmlet.pki.ca import new_key_and_csr, new_root
from tests.etcd_fixtures import etcd_binary_or_skip, free_ports

NODE_ID = "node1id"


def _config(state_dir: Path) -> MemberConfig:
    client_port, peer_port = free_ports(2)
    return new_cluster_member(
        NODE_ID, state_dir, "127.0.0.1", "cluster1", client_port=client_port, peer_port=peer_port
    )


def test_the_member_file_gives_the_member_back(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert not etcd_store.on_etcd(tmp_path)
    etcd_store.save_member(tmp_path, config)
    assert etcd_store.on_etcd(tmp_path)
    assert etcd_store.load_member(tmp_path) == config


def test_a_move_that_did_not_write_etcd_json_is_undone(tmp_path: Path) -> None:
    (tmp_path / "store.db").write_text("rows")
    (tmp_path / "store.db-wal").write_text("wal")
    etcd_store.keep_sqlite_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db-wal.moved", "store.db.moved"]
    etcd_store.restore_unfinished_move(tmp_path)
    assert (tmp_path / "store.db").read_text() == "rows"
    assert (tmp_path / "store.db-wal").read_text() == "wal"
    # Once etcd.json is written the move happened: the files stay moved.
    etcd_store.keep_sqlite_files(tmp_path)
    etcd_store.save_member(tmp_path, _config(tmp_path))
    etcd_store.restore_unfinished_move(tmp_path)
    assert not (tmp_path / "store.db").exists()


def test_leaving_forgets_the_member(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.data_dir.mkdir()
    (config.data_dir / "member").mkdir()
    config.tls_dir.mkdir()
    config.log_path.write_text("etcd said")
    (tmp_path / "store.db.moved").write_text("rows")
    etcd_store.save_member(tmp_path, config)
    etcd_store.forget(tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_a_manager_on_etcd_starts_its_member_and_opens_its_store(tmp_path: Path) -> None:
    etcd_binary_or_skip()
    clock = SystemClock()
    identity_file.save_identity(
        tmp_path,
        identity_file.NodeIdentity(
            node_id=NODE_ID,
            role=NodeRole.MANAGER,
            advertise_addr="127.0.0.1",
            listen_addr="127.0.0.1:0",
            manager_addrs=["127.0.0.1:2377"],
        ),
    )
    dek = create_key_file(tmp_path / identity_file.KEY_FILE)
    sqlite = await Store.open(SqliteBackend(tmp_path / "store.db", Cipher(dek)), clock)
    root = new_root(datetime.now(UTC))
    root_ca = RootCA(ca_cert=root.cert_pem, ca_key=root.key_pem)
    web = Service(id="s1", spec=ServiceSpec(name="web"))
    await sqlite.commit([Op.create(Cluster(id="cluster1", root_ca=root_ca)), Op.create(web)])
    # The move, as the daemon makes it: a member of a new cluster, the objects, etcd.json.
    config = _config(tmp_path)
    tls = member_tls(
        root_ca,
        node_id=NODE_ID,
        cluster_id="cluster1",
        address="127.0.0.1",
        expiry=timedelta(days=1),
        now=datetime.now(UTC),
    )
    write_member_tls(config, tls)
    member = await etcd_store.Member.start(config, clock)
    try:
        assert await etcd_store.copy_store(sqlite, member, dek) == 2
    finally:
        await member.stop()
    sqlite.close()
    etcd_store.finish_move(tmp_path, config)
    assert (tmp_path / "store.db.moved").exists()

    control = NodeControl(
        state_dir=tmp_path,
        engine=None,  # type: ignore[arg-type]
        engine_socket="/nowhere.sock",
        hostname="node1",
        clock=clock,
        container_labels={},
    )
    await control.open()
    try:
        store = control.store
        assert store is not None
        assert store.get(Service, "s1").spec == web.spec
        assert store.cluster() is not None
        assert isinstance(control.cluster, LocalCluster)
        assert isinstance(control.cluster.view, Election)
        assert control._etcd is not None
        pid = control._etcd.member.pid
    finally:
        await control.close()
    assert pid is not None
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_second_member_joins_with_the_grant_and_reads_the_store(tmp_path: Path) -> None:
    """What the route on port 2377 answers (``EtcdStore.add_member``), used as a joining
    manager uses it: its member starts with the grant as a learner, which counts in no quorum
    (the first member alone still writes), is promoted when the joiner asks again once it has
    caught up, and its store holds the swarm's objects, opened with the DEK it was given."""
    etcd_binary_or_skip()
    clock = SystemClock()
    root = new_root(datetime.now(UTC))
    root_ca = RootCA(ca_cert=root.cert_pem, ca_key=root.key_pem)
    first_dir, joiner_dir = tmp_path / "first", tmp_path / "joiner"
    first_dir.mkdir()
    joiner_dir.mkdir()
    first = _config(first_dir)
    write_member_tls(
        first,
        member_tls(
            root_ca,
            node_id=NODE_ID,
            cluster_id="cluster1",
            address="127.0.0.1",
            expiry=timedelta(days=1),
            now=datetime.now(UTC),
        ),
    )
    dek = new_dek()
    manager = await etcd_store.EtcdStore.open(first, clock, dek)
    joined: etcd_store.EtcdStore | None = None
    try:
        web = Service(id="s1", spec=ServiceSpec(name="web"))
        await manager.store.commit(
            [Op.create(Cluster(id="cluster1", root_ca=root_ca)), Op.create(web)]
        )
        client_port, peer_port = free_ports(2)
        key, csr = new_key_and_csr()
        request = MemberRequest(peer_url=f"https://127.0.0.1:{peer_port}", csr=csr)
        grant = await manager.add_member(Node(id="node2id"), request, clock, "")
        # Asked again (an answer lost on the way), the joiner is the member it was added as.
        again = await manager.add_member(Node(id="node2id"), request, clock, "")
        assert again.initial_cluster == grant.initial_cluster
        assert sorted(p.name for p in grant.initial_cluster) == ["", NODE_ID]
        # Not started, so not promoted.
        assert not grant.voting
        assert not again.voting
        # The learner, never started, takes no quorum: the first member alone writes.
        await manager.store.commit([Op.create(Service(id="s2", spec=ServiceSpec(name="b")))])
        assert grant.cluster_token == first.cluster_token
        assert grant.data_key() == dek
        assert read_certificate(grant.certificate).node_id == "etcd-node2id"

        config = joining_member(
            "node2id",
            joiner_dir,
            "127.0.0.1",
            grant.cluster_token,
            grant.peers(),
            client_port=client_port,
            peer_port=peer_port,
        )
        write_member_tls(config, MemberTLS(grant.certificate, key, grant.trust))
        learner = await etcd_store.Member.start(config, clock)
        try:
            # Asked again, it votes once it has caught up (the joiner's request_vote).
            for _ in range(50):
                if (await manager.add_member(Node(id="node2id"), request, clock, "")).voting:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the learner was not promoted")
            await etcd_store.until_serving(learner.client, clock)
        except BaseException:
            await learner.stop()
            raise
        joined = await etcd_store.EtcdStore.open(config, clock, grant.data_key(), learner)
        assert joined.store.get(Service, "s1").spec == web.spec
        names = sorted(m.name for m in await joined.member.client.member_list())
        assert names == sorted([NODE_ID, "node2id"])
    finally:
        if joined is not None:
            await joined.close()
        await manager.close()
