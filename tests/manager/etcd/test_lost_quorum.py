"""A write that etcd cannot take is Swarm's lost quorum, answered soon: a member without a
leader refuses at once (the client asks for one), and a member that does not answer at all
is given up on after the backend's bound, rather than etcd's own 7 s or the client's 10 s."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock
from swarmlet.errors import NO_LEADER, Unavailable
from swarmlet.manager.etcd import joining_member, new_cluster_member
from swarmlet.manager.etcd.client import EtcdClient
from swarmlet.manager.store import Op, Store
from swarmlet.manager.store.etcd import WRITE_TIMEOUT_S, EtcdBackend
from swarmlet.models import Service, ServiceSpec
from tests.manager.etcd.conftest import ADDRESS, CLUSTER, Members, free_ports
from tests.manager.etcd.test_member import WITHIN_S, add_member, peers_of


def service(name: str) -> Service:
    return Service(id=f"id-{name}", spec=ServiceSpec(name=name))


async def without_leader(client: EtcdClient) -> bool:
    try:
        await client.get(b"/s/probe")
    except Unavailable as exc:
        return "etcdserver: no leader" in exc.message
    return False


async def test_a_member_without_a_leader_refuses_a_write_at_once(
    members: Members, tmp_path: Path
) -> None:
    ports = free_ports(4)
    first = new_cluster_member(
        "node1", tmp_path / "node1", ADDRESS, CLUSTER, client_port=ports[0], peer_port=ports[1]
    )
    one = await members.start(first)
    after = await add_member(one.client, f"https://{ADDRESS}:{ports[3]}")
    second = joining_member(
        "node2", tmp_path / "node2", ADDRESS, CLUSTER, peers_of(after),
        client_port=ports[2], peer_port=ports[3],
    )  # fmt: skip
    two = await members.start(second)
    store = await Store.open(EtcdBackend(one.client, None, b"/s/"), FakeClock())
    try:
        await store.commit([Op.create(service("before"))])
        await cancel_and_wait(two.task)  # one member of two: no majority, so no leader
        # Once the member knows it has no leader (a leader that lost its majority steps
        # down an election timeout later; a write in between waits, see the next test):
        deadline = asyncio.get_running_loop().time() + WITHIN_S
        while not await without_leader(one.client):
            assert asyncio.get_running_loop().time() < deadline, "the member kept a leader"
            await asyncio.sleep(0.1)
        # etcd's own refusal, not its request timeout ("request timed out", after 7 s).
        with pytest.raises(Unavailable) as refused:
            await store.commit([Op.create(service("after"))])
        assert refused.value.message.startswith(NO_LEADER)
        assert "etcdserver: no leader" in refused.value.message
        assert store.by_name(Service, "after") is None
    finally:
        store.close()


async def test_a_write_a_member_does_not_answer_is_given_up_on(
    members: Members, tmp_path: Path
) -> None:
    ports = free_ports(2)
    config = new_cluster_member(
        "node1", tmp_path / "node1", ADDRESS, CLUSTER, client_port=ports[0], peer_port=ports[1]
    )
    member = await members.start(config)
    store = await Store.open(EtcdBackend(member.client, None, b"/s/"), FakeClock())
    pid = member.supervisor.pid
    assert pid is not None
    try:
        await store.commit([Op.create(service("before"))])
        os.kill(pid, signal.SIGSTOP)  # the member takes the request and never answers
        try:
            with pytest.raises(Unavailable) as refused:
                await store.commit([Op.create(service("after"))])
        finally:
            os.kill(pid, signal.SIGCONT)
        assert refused.value.message.startswith(NO_LEADER)
        assert f"etcd did not answer within {WRITE_TIMEOUT_S:.1f} s" in refused.value.message
    finally:
        store.close()
