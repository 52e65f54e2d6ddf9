"""Real etcd members, supervised, on 127.0.0.1: TLS on both ports, keys through the
gRPC API, a restart after a crash, a clean stop, and a cluster of three grown by member add."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from pathlib import Path

import aiohttp
import pytest

from swarmlet.errors import Unavailable
from swarmlet.manager.etcd import (
    ClientTLS,
    Peer,
    client_ssl_context,
    joining_member,
    new_cluster_member,
)
from swarmlet.manager.etcd.client import EtcdClient, MemberInfo
from swarmlet.models import NodeRole
from swarmlet.pki.ca import Issuer
from tests.manager.etcd.conftest import ADDRESS, CLUSTER, Members, Running, free_ports
from tests.pki.builders import node_credentials

WITHIN_S = 30.0


async def until(what: str, check: object) -> None:
    """Wait until ``check()`` is true, failing after WITHIN_S."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not {what} within {WITHIN_S} s"
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


async def https_status(url: str, context: ssl.SSLContext) -> int:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        session.get(url) as response,
    ):
        return response.status


def context_of(trust: Path, cert: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(trust))
    if cert is not None:
        context.load_cert_chain(cert)
    return context


async def test_one_member_serves_over_tls_and_is_restarted_after_a_crash(
    members: Members, root: Issuer, tmp_path: Path
) -> None:
    client_port, peer_port = free_ports(2)
    config = new_cluster_member(
        "node1", tmp_path / "node1", ADDRESS, CLUSTER, client_port=client_port, peer_port=peer_port
    )
    member = await members.start(config)
    assert await member.client.healthy()
    assert [m.name for m in await member.client.member_list()] == ["node1"]

    # A client without a certificate is refused on both ports.
    no_certificate = context_of(config.trust_path)
    trust_only = ClientTLS(trust=config.trust_path.read_bytes())
    async with EtcdClient(config.client_url, trust_only) as stranger:
        assert not await stranger.healthy()
        with pytest.raises(Unavailable):
            await stranger.put(b"k", b"v")
    with pytest.raises(aiohttp.ClientError):
        await https_status(config.peer_url + "/version", no_certificate)
    # A node certificate of the same root is no peer: only a member's is.
    worker = node_credentials(tmp_path / "worker", root, NodeRole.WORKER)
    with pytest.raises(aiohttp.ClientError):
        await https_status(
            config.peer_url + "/version", context_of(config.trust_path, worker.node_path)
        )
    assert await https_status(config.peer_url + "/version", client_ssl_context(config)) == 200

    # Keys through the gRPC API.
    revision = await member.client.put(b"/swarmlet/test", b"hello")
    assert revision > 1
    assert await member.client.get(b"/swarmlet/test") == b"hello"
    assert await member.client.get(b"/swarmlet/none") is None

    # A crash: the supervisor starts it again, with its data.
    first = member.supervisor.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until("restarted", lambda: member.supervisor.starts == 2)
    await members.wait_healthy(member)
    assert member.supervisor.pid != first
    assert await member.client.get(b"/swarmlet/test") == b"hello"

    # Stopping: the process is gone, its output in the node's etcd.log.
    second = member.supervisor.pid
    assert second is not None
    await members.close()
    assert member.task.cancelled()
    assert not alive(second)
    assert member.supervisor.pid is None
    log = config.log_path.read_text()
    assert log.count("swarmletd starts: ") == 2
    assert log.count("serving client traffic securely") == 2
    assert "closed etcd server" in log  # it ended on SIGTERM, cleanly


async def add_member(client: EtcdClient, peer_url: str) -> list[MemberInfo]:
    """``member add``, tried again while etcd refuses it for a member that has only just
    started (its strict reconfiguration check wants every member connected for 5 s)."""
    async with asyncio.timeout(WITHIN_S):
        while True:
            try:
                _, after = await client.member_add(peer_url)
            except Unavailable as exc:
                if "unhealthy" not in exc.message and "not enough" not in exc.message:
                    raise
                await asyncio.sleep(0.2)
            else:
                return after


def peers_of(infos: list[MemberInfo]) -> list[Peer]:
    return [peer for info in infos for peer in info.peers()]


async def test_three_members_grown_by_member_add_share_their_keys(
    members: Members, tmp_path: Path
) -> None:
    ports = free_ports(6)
    first = new_cluster_member(
        "node1", tmp_path / "node1", ADDRESS, CLUSTER, client_port=ports[0], peer_port=ports[1]
    )
    running: list[Running] = [await members.start(first)]
    for index, name in ((1, "node2"), (2, "node3")):
        client_port, peer_port = ports[2 * index], ports[2 * index + 1]
        peer_url = f"https://{ADDRESS}:{peer_port}"
        after = await add_member(running[0].client, peer_url)
        config = joining_member(
            name,
            tmp_path / name,
            ADDRESS,
            CLUSTER,
            peers_of(after),
            client_port=client_port,
            peer_port=peer_port,
        )
        running.append(await members.start(config))

    for member in running:
        assert await member.client.healthy()
    listed = await running[2].client.member_list()
    assert sorted(m.name for m in listed) == ["node1", "node2", "node3"]
    assert sorted(m.peer_urls for m in listed) == sorted(
        (f"https://{ADDRESS}:{ports[i]}",) for i in (1, 3, 5)
    )

    await running[0].client.put(b"/swarmlet/shared", b"from node1")
    assert await running[2].client.get(b"/swarmlet/shared") == b"from node1"
    await running[1].client.put(b"/swarmlet/shared", b"from node2")
    assert await running[0].client.get(b"/swarmlet/shared") == b"from node2"
