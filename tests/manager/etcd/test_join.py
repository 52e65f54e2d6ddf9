"""A manager asking to join etcd on the manager's port (``join.py``), over real TLS on
loopback: only a manager's certificate of a node that is a manager in the store is admitted,
the joiner asks again while the manager answers 503 (a move to etcd), and gets the grant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from swarmlet.agent.certificates import CertificateRenewer
from swarmlet.clock import SystemClock
from swarmlet.errors import Forbidden, Unavailable
from swarmlet.manager.ca import CertificateAuthority
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.server import manager_app
from swarmlet.manager.etcd.join import (
    MemberGrant,
    MemberRequest,
    PeerModel,
    member_routes,
    request_membership,
)
from swarmlet.manager.store import Op
from swarmlet.models import Node, NodeRole
from swarmlet.pki import Credentials
from swarmlet.pki.tls import client_context, reloading_server_context
from tests.manager.dispatcher.loopback import Manager

GRANT = MemberGrant(
    initial_cluster=[PeerModel(name="m1", peer_url="https://127.0.0.1:2380")],
    cluster_token="c1",
    certificate="cert",
    trust="trust",
    dek="ZGVr",
)
REQUEST = MemberRequest(peer_url="https://127.0.0.2:2380", csr="csr")


class FakeMembers:
    """Answers 503 ``busy`` times (a move under way), then the grant; records who asked."""

    def __init__(self, busy: int = 0) -> None:
        self.busy = busy
        self.asked: list[tuple[str, MemberRequest]] = []

    async def add_member(self, node: Node, request: MemberRequest) -> MemberGrant:
        self.asked.append((node.id, request))
        if self.busy:
            self.busy -= 1
            raise Unavailable("the swarm's store is moving to etcd")
        return GRANT


class Port:
    """The manager's port with the members' route, on loopback TLS."""

    def __init__(self, manager: Manager, members: FakeMembers) -> None:
        self.manager = manager
        self.members = members
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        manager = self.manager
        dispatcher = Dispatcher(manager.store, manager.clock)
        authority = CertificateAuthority(manager.store, manager.clock)
        routes = member_routes(manager.store, manager.clock, self.members)
        self._runner = web.AppRunner(manager_app(dispatcher, authority, routes=routes))
        await self._runner.setup()
        tls = reloading_server_context(manager.credentials)
        await web.TCPSite(self._runner, "127.0.0.1", manager.port, ssl_context=tls).start()

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def manager(tmp_path: Path) -> Manager:
    return await Manager.create(tmp_path)


@pytest.fixture
async def port(manager: Manager) -> AsyncIterator[Port]:
    port = Port(manager, FakeMembers())
    await port.start()
    yield port
    await port.stop()


async def _worker(manager: Manager, folder: Path) -> tuple[str, Credentials]:
    credentials = Credentials(folder)
    return await manager.join_worker(credentials), credentials


async def _promote(manager: Manager, node_id: str, credentials: Credentials) -> None:
    """`docker node promote`, then the renewal the dispatcher asks for."""
    node = manager.store.get(Node, node_id)
    spec = node.spec.replace(role=NodeRole.MANAGER)
    await manager.store.commit([Op.update(node.replace(spec=spec))])
    await CertificateRenewer(credentials, [manager.addr], manager.clock).renew()


async def _ask(manager: Manager, credentials: Credentials, within_s: float = 5.0) -> MemberGrant:
    tls = client_context(credentials.trust(), credentials)
    return await request_membership([manager.addr], REQUEST, tls, SystemClock(), within_s)


async def test_a_manager_is_granted_membership(port: Port, tmp_path: Path) -> None:
    node_id, credentials = await _worker(port.manager, tmp_path / "n2")
    await _promote(port.manager, node_id, credentials)
    assert await _ask(port.manager, credentials) == GRANT
    assert port.members.asked == [(node_id, REQUEST)]


async def test_a_worker_is_refused(port: Port, tmp_path: Path) -> None:
    _, credentials = await _worker(port.manager, tmp_path / "n2")
    with pytest.raises(Forbidden, match="is not a manager"):
        await _ask(port.manager, credentials)
    assert port.members.asked == []


async def test_a_demoted_managers_certificate_is_refused(port: Port, tmp_path: Path) -> None:
    node_id, credentials = await _worker(port.manager, tmp_path / "n2")
    await _promote(port.manager, node_id, credentials)
    node = port.manager.store.get(Node, node_id)
    demoted = node.replace(spec=node.spec.replace(role=NodeRole.WORKER))
    await port.manager.store.commit([Op.update(demoted)])
    with pytest.raises(Forbidden):
        await _ask(port.manager, credentials)


async def test_the_joiner_asks_again_while_the_store_moves(
    manager: Manager, tmp_path: Path
) -> None:
    port = Port(manager, FakeMembers(busy=2))
    await port.start()
    try:
        node_id, credentials = await _worker(manager, tmp_path / "n2")
        await _promote(manager, node_id, credentials)
        assert await _ask(manager, credentials) == GRANT
        assert len(port.members.asked) == 3
    finally:
        await port.stop()


async def test_the_joiner_gives_up_when_no_manager_answers(
    manager: Manager, tmp_path: Path
) -> None:
    port = Port(manager, FakeMembers())
    await port.start()
    node_id, credentials = await _worker(manager, tmp_path / "n2")
    await _promote(manager, node_id, credentials)
    await port.stop()
    with pytest.raises(Unavailable, match="no manager added this node to etcd"):
        await asyncio.wait_for(_ask(manager, credentials, within_s=1.5), 30)
