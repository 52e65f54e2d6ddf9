"""The manager's port over real TLS on loopback, for tests: a cluster's CA and dispatcher
served on a free port, and agents that join it and open sessions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import pytest
from aiohttp import web

from swarmlet.agent import certificates
from swarmlet.agent.session import Session
from swarmlet.clock import SystemClock
from swarmlet.manager.ca import CertificateAuthority, new_cluster_root
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.attachments import Attachments
from swarmlet.manager.dispatcher.server import manager_app
from swarmlet.manager.store import MemoryBackend, Op, Store
from swarmlet.models import Cluster, Config, Node, NodeDescription, NodeRole, NodeSpec, Secret, Task
from swarmlet.pki import Credentials
from swarmlet.pki.ca import new_key_and_csr
from swarmlet.pki.tls import reloading_server_context
from swarmlet.protocol import StatusUpdate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Manager:
    """A cluster's CA and dispatcher served with TLS on a loopback port; it can be stopped and
    started again. Made by ``create``, which founds the cluster."""

    def __init__(self, folder: Path) -> None:
        self.clock = SystemClock()
        self.store = Store(MemoryBackend(), self.clock)
        self.credentials = Credentials(folder / "manager")
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.Task[None] | None = None
        # The Engine API for forwarded requests, when a test mounts one (before start()).
        self.api: web.Application | None = None
        # The network attachments' side, when a test gives its own (before start()).
        self.attachments: Attachments | None = None

    @classmethod
    async def create(cls, folder: Path) -> Manager:
        """A manager with its cluster (``c1``) and its own node (``m1``) and certificate."""
        manager = cls(folder)
        root_ca, tokens = new_cluster_root(manager.clock.now())
        cluster = Cluster(id="c1", join_tokens=tokens, root_ca=root_ca)
        await manager.store.commit([Op.create(cluster)])
        key, csr = new_key_and_csr()
        node = Node(id="m1", spec=NodeSpec(role=NodeRole.MANAGER))
        authority = CertificateAuthority(manager.store, manager.clock)
        issued = await authority.create_node_certificate(node, csr)
        manager.credentials.save(trust_pem=issued.trust, cert_pem=issued.certificate, key_pem=key)
        return manager

    @property
    def cluster(self) -> Cluster:
        cluster = self.store.cluster()
        assert cluster is not None
        return cluster

    async def start(self) -> None:
        dispatcher = Dispatcher(self.store, self.clock)
        authority = CertificateAuthority(self.store, self.clock)
        self._loop = asyncio.create_task(dispatcher.run())
        app = manager_app(dispatcher, authority, self.api, self.attachments)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        tls = reloading_server_context(self.credentials)
        site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=tls
        )
        await site.start()

    async def stop(self) -> None:
        assert self._runner is not None
        assert self._loop is not None
        await self._runner.cleanup()
        self._loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._loop

    async def join_worker(self, credentials: Credentials) -> str:
        """A node joins with the worker token, its certificate kept in ``credentials``; the
        new node's ID."""
        return await certificates.join([self.addr], self.cluster.join_tokens.worker, credentials)


class Worker(Protocol):
    """What a session hands assignments to and asks for statuses."""

    async def assign(self, tasks: Sequence[Task]) -> None: ...

    def statuses(self) -> list[StatusUpdate]: ...


class FakeWorker:
    def __init__(self) -> None:
        self.assigned: list[list[str]] = []
        self.last: dict[str, StatusUpdate] = {}

    async def assign(self, tasks: Sequence[Task]) -> None:
        self.assigned.append([task.id for task in tasks])

    def statuses(self) -> list[StatusUpdate]:
        return list(self.last.values())


async def eventually(check: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def session_of(
    manager: Manager,
    credentials: Credentials,
    worker: Worker,
    dependencies: Callable[[Sequence[Secret], Sequence[Config]], None] | None = None,
) -> Session:
    """A session to the manager for the node whose certificate is in ``credentials`` (its
    hostname the name of their folder)."""

    async def describe() -> NodeDescription:
        return NodeDescription(hostname=credentials.folder.name)

    return Session(
        credentials=credentials,
        manager_addrs=[manager.addr],
        addr="127.0.0.1",
        describe=describe,
        assign=worker.assign,
        statuses=worker.statuses,
        clock=SystemClock(),
        dependencies=dependencies,
    )


async def joined_session(
    manager: Manager,
    credentials: Credentials,
    worker: Worker,
    dependencies: Callable[[Sequence[Secret], Sequence[Config]], None] | None = None,
) -> tuple[str, Session, asyncio.Task[None]]:
    """A worker joins, then runs a session until it is connected: the node's ID, the session
    and the task running it (end it with `stop`)."""
    node_id = await manager.join_worker(credentials)
    session = session_of(manager, credentials, worker, dependencies)
    running = asyncio.create_task(session.run())
    await asyncio.wait_for(session.connected.wait(), 5)
    return node_id, session, running


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
