"""Simulated nodes: many agents in one process, each with its own identity and session.

A ``SimulatedNode`` is an agent without a host: it joins with a token like any worker (its own
key, CSR and certificate), keeps its own session to the managers with its own heartbeats, and
runs its tasks through the real ``Worker`` and task controllers on a ``SimulatedEngine``. It
has no network agent (a task on an overlay network runs without one) and no tmpfs: a task that
uses secrets or configs is rejected ("this agent cannot deliver secrets and configs"). It
renews its certificate and follows root rotations as an agent does.

``SimulatedCluster`` runs N of them against a manager: each joins (at most ``join_concurrency``
at a time, since each makes a key and a CSR and the manager signs it) and then runs until the
cluster is cancelled. It is a benchmark tool, never a default: nothing in swarmletd uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swarmlet.agent import certificates
from swarmlet.agent.certificates import CertificateRenewer
from swarmlet.agent.describe import describe_node
from swarmlet.agent.session import Session, SessionClosed
from swarmlet.agent.worker import Worker
from swarmlet.clock import Clock, SystemClock
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.models import NodeDescription, TLSInfo
from swarmlet.pki import Credentials, JoinToken, node_tls_info, root_digest
from swarmlet.pki.keygen import new_key_and_csr_here
from swarmlet.protocol import Certificates, NodeTLS, StatusUpdate
from swarmlet.sim.engine import Behaviour, SimulatedEngine

log = logging.getLogger(__name__)

DEFAULT_JOIN_CONCURRENCY = 20
# A join that finds no manager is retried (0.2 s doubling to 2 s), about 15 s in all.
JOIN_BACKOFF = (0.2, 2.0)
JOIN_ATTEMPTS = 10
ZONE_LABEL = "sim.zone"
MAX_NODES = 256 * 256  # node numbers stay below it (each has an address in 127.1.0.0/16)
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.DOTALL)


def hostname_of(index: int) -> str:
    return f"sim-{index:04d}"


def address_of(index: int) -> str:
    """The address a node advertises: one of its own on loopback (nothing listens there;
    nothing needs to, since simulated nodes program no network)."""
    if not 0 < index < MAX_NODES:
        raise ValueError(f"node index out of range: {index}")
    return f"127.1.{index // 256}.{index % 256}"


def labels_of(index: int, zones: int) -> dict[str, str]:
    """Engine labels to place by (``engine.labels.sim.zone == zone-1``): nodes are spread
    round-robin over ``zones`` zones (none when 0)."""
    return {ZONE_LABEL: f"zone-{index % zones}"} if zones > 0 else {}


def rng_of(seed: int | None, index: int) -> random.Random:
    """Each node's own randomness: reproducible from the cluster's seed, if one is given."""
    return random.Random(None if seed is None else seed * 100_003 + index)


def known_node_id(credentials: Credentials, token: str) -> str | None:
    """The ID of the node whose certificate ``credentials`` holds, if it is one of the cluster
    ``token`` joins (the token's digest names a root it trusts); None when it must join."""
    if not credentials.exists():
        return None
    digest = JoinToken.parse(token).digest
    if not any(root_digest(pem) == digest for pem in _PEM.findall(credentials.trust())):
        return None
    return credentials.certificate().node_id


class SimulatedNode:
    """A worker agent on a simulated engine; ``run()`` until cancelled."""

    def __init__(
        self,
        *,
        node_id: str,
        credentials: Credentials,
        manager_addrs: Sequence[str],
        engine: SimulatedEngine,
        clock: Clock,
        hostname: str,
        addr: str,
    ) -> None:
        self.node_id = node_id
        self.hostname = hostname
        self.engine = engine
        self._credentials = credentials
        # No networking and no task files: nothing here touches the host.
        self.worker = Worker(engine, node_id, self._report, clock)
        self.certificates = CertificateRenewer(
            credentials,
            manager_addrs,
            clock,
            renewed=self._report_tls,
            new_key_and_csr=new_key_and_csr_here,
        )
        self.session = Session(
            credentials=credentials,
            manager_addrs=manager_addrs,
            addr=addr,
            describe=self._describe,
            assign=self.worker.assign,
            statuses=self.worker.statuses,
            clock=clock,
            certificates=self._update_certificates,
        )

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.worker.run(), name=f"{self.hostname}-worker")
            group.create_task(self.session.run(), name=f"{self.hostname}-session")
            group.create_task(self.certificates.run(), name=f"{self.hostname}-certificates")

    async def _report(self, updates: list[StatusUpdate]) -> None:
        await self.session.report(updates)

    async def _describe(self) -> NodeDescription:
        description = await describe_node(self.engine, self.hostname)
        return description.replace(tls_info=self._tls_info())

    def _tls_info(self) -> TLSInfo:
        credentials = self._credentials
        return node_tls_info(credentials.node_path.read_text(), credentials.trust())

    async def _report_tls(self) -> None:
        # As the agent: without a session, the next registration carries it.
        with contextlib.suppress(SessionClosed):
            await self.session.send(NodeTLS(tls_info=self._tls_info()))

    async def _update_certificates(self, update: Certificates) -> None:
        """Trust what the manager says, and renew when asked (a new role, a new root)."""
        if self._credentials.trust() != update.trust:
            self._credentials.save_trust(update.trust)
            await self._report_tls()
        if update.renew:
            self.certificates.renew_soon()


@dataclass(frozen=True)
class Fleet:
    """What to simulate: ``count`` nodes numbered from ``first`` (``sim-0001``...)."""

    count: int
    behaviour: Behaviour = field(default_factory=Behaviour)
    seed: int | None = None
    zones: int = 0
    first: int = 1
    cpus: int = 4
    memory: int = 8 * 1024**3

    def __post_init__(self) -> None:
        last = self.first + self.count - 1
        if self.count < 1 or self.first < 1 or last >= MAX_NODES:
            raise InvalidSpec(f"nodes are numbered 1 to {MAX_NODES - 1}: not {self.first}-{last}")


@dataclass(frozen=True)
class Stats:
    """How a simulated cluster is doing, at one moment."""

    joined: int  # nodes with a certificate
    connected: int  # of those, with a session open
    running: int  # simulated processes running
    started: int  # starts so far
    failed: int  # of those, processes that exited at once

    def __str__(self) -> str:
        return (
            f"{self.joined} nodes joined, {self.connected} connected;"
            f" {self.running} processes running; {self.started} started, {self.failed} failed"
        )


class SimulatedCluster:
    """N simulated nodes against the managers at ``manager_addrs``; their identities live in
    ``state_dir/<hostname>/certificates`` (a node whose identity is there and belongs to the
    token's cluster does not join again)."""

    def __init__(
        self,
        manager_addrs: Sequence[str],
        token: str,
        state_dir: Path,
        fleet: Fleet,
        *,
        clock: Clock | None = None,
        join_concurrency: int = DEFAULT_JOIN_CONCURRENCY,
    ) -> None:
        JoinToken.parse(token)
        self._managers = list(manager_addrs)
        self._token = token
        self._state_dir = state_dir
        self.fleet = fleet
        self._clock: Clock = clock or SystemClock()
        self._joining = asyncio.Semaphore(join_concurrency)
        self._nodes: dict[int, SimulatedNode] = {}
        self.joined = asyncio.Event()  # every node has its certificate

    @property
    def nodes(self) -> list[SimulatedNode]:
        """The nodes that have joined, in order."""
        return [self._nodes[index] for index in sorted(self._nodes)]

    @property
    def engines(self) -> Mapping[str, SimulatedEngine]:
        """Each joined node's engine, by node ID."""
        return {node.node_id: node.engine for node in self._nodes.values()}

    def stats(self) -> Stats:
        nodes = list(self._nodes.values())
        return Stats(
            joined=len(nodes),
            connected=sum(1 for node in nodes if node.session.connected.is_set()),
            running=sum(node.engine.running for node in nodes),
            started=sum(node.engine.started for node in nodes),
            failed=sum(node.engine.failed for node in nodes),
        )

    async def run(self) -> None:
        """Join every node and run them all until cancelled; a node that cannot join takes
        the whole cluster down (loudly)."""
        fleet = self.fleet
        async with asyncio.TaskGroup() as group:
            for index in range(fleet.first, fleet.first + fleet.count):
                group.create_task(self._join_and_run(index), name=hostname_of(index))

    async def _join_and_run(self, index: int) -> None:
        node = await self._join(index)
        self._nodes[index] = node
        if len(self._nodes) == self.fleet.count:
            log.info("%d simulated nodes joined", self.fleet.count)
            self.joined.set()
        await node.run()

    async def _join_with_retries(self, credentials: Credentials) -> str:
        """Join, retrying a while when no manager answers (one may be starting); a refusal
        (a bad token) is final."""
        delay, attempt = JOIN_BACKOFF[0], 1
        while True:
            try:
                async with self._joining:
                    return await certificates.join(
                        self._managers, self._token, credentials, new_key_and_csr_here
                    )
            except Unavailable as exc:
                if attempt >= JOIN_ATTEMPTS:
                    raise
                log.info("joining: %s; retrying", exc.message)
            await self._clock.sleep(delay)
            delay, attempt = min(delay * 2, JOIN_BACKOFF[1]), attempt + 1

    async def _join(self, index: int) -> SimulatedNode:
        fleet = self.fleet
        hostname = hostname_of(index)
        credentials = Credentials.of(self._state_dir / hostname)
        node_id = known_node_id(credentials, self._token)
        if node_id is None:
            node_id = await self._join_with_retries(credentials)
        engine = SimulatedEngine(
            fleet.behaviour,
            self._clock,
            rng_of(fleet.seed, index),
            cpus=fleet.cpus,
            memory=fleet.memory,
            labels=labels_of(index, fleet.zones),
        )
        return SimulatedNode(
            node_id=node_id,
            credentials=credentials,
            manager_addrs=self._managers,
            engine=engine,
            clock=self._clock,
            hostname=hostname,
            addr=address_of(index),
        )
