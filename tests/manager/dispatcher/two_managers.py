"""Two managers' ports over one store, on loopback with real TLS, for the tests of leadership
moving between them: each serves the CA, the attachments and the sessions (its own dispatcher),
and one leads (its dispatcher runs) while a test says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.manager.ca import CertificateAuthority
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.server import manager_app
from swarmlet.manager.store import Store, Tx
from swarmlet.models import ManagerStatus, Node, NodeRole, NodeSpec
from swarmlet.pki import Credentials
from swarmlet.pki.ca import new_key_and_csr
from swarmlet.pki.tls import reloading_server_context
from tests.manager.dispatcher.loopback import Manager, free_port


class Port:
    """One manager's port: its dispatcher leads between ``lead`` and ``step_down``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        credentials: Credentials,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.dispatcher = dispatcher or Dispatcher(store, clock)
        self.authority = CertificateAuthority(store, clock)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None
        self._term: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(manager_app(self.dispatcher, self.authority))
        await self._runner.setup()
        tls = reloading_server_context(self.credentials)
        site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=tls
        )
        await site.start()

    def lead(self) -> None:
        """A term starts: the dispatcher runs."""
        assert self._term is None
        self._term = asyncio.create_task(self.dispatcher.run(), name=f"term-{self.addr}")

    async def step_down(self) -> None:
        """The term ends: the dispatcher's run is cancelled."""
        assert self._term is not None
        await cancel_and_wait(self._term)
        self._term = None

    async def stop(self) -> None:
        if self._term is not None:
            await self.step_down()
        if self._runner is not None:
            await self._runner.cleanup()


async def manager_node(manager: Manager, node_id: str, folder: Path) -> Credentials:
    """Another manager node of ``manager``'s cluster, with its certificate."""
    credentials = Credentials(folder / node_id)
    key, csr = new_key_and_csr()
    node = Node(id=node_id, spec=NodeSpec(role=NodeRole.MANAGER))
    authority = CertificateAuthority(manager.store, manager.clock)
    issued = await authority.create_node_certificate(node, csr)
    credentials.save(trust_pem=issued.trust, cert_pem=issued.certificate, key_pem=key)
    return credentials


async def set_manager_addr(store: Store, node_id: str, addr: str) -> None:
    """The manager node's ``ManagerStatus.Addr``, as its daemon records its port."""

    def record(tx: Tx) -> None:
        node = tx.get(Node, node_id)
        status = node.manager_status or ManagerStatus()
        tx.update(node.replace(manager_status=status.replace(addr=addr)))

    await store.update(record)


async def two_ports(folder: Path) -> tuple[Manager, Port, Port]:
    """A cluster (``loopback.Manager``, not started: its store and CA) with two manager nodes,
    ``m1`` and ``m2``, each serving a port; their addresses are their ``ManagerStatus.Addr``.
    Neither leads yet."""
    manager = await Manager.create(folder)
    m2 = await manager_node(manager, "m2", folder)
    first = Port(manager.store, manager.clock, manager.credentials)
    second = Port(manager.store, manager.clock, m2)
    for node_id, port in (("m1", first), ("m2", second)):
        await set_manager_addr(manager.store, node_id, port.addr)
        await port.start()
    return manager, first, second
