"""The store's write latency (memory, SQLite, etcd) and leadership failover on etcd (issue 14).

    .venv/bin/python benchmarks/store.py [--writes 300] [--runs 5] [--no-write]

No lab, no engine: real etcd members (Debian's ``etcd-server``) on 127.0.0.1, started by this
script as plain children (``etcd_argv``: TLS on both ports, the store's raised txn limits) on
ports the kernel gives and in a temporary folder, and stopped by their PIDs at the end,
whatever happens (``setpriv --pdeathsig KILL`` too, should this script be killed). SQLite and
etcd store the objects sealed (``Cipher``, AES-256-GCM), as a manager does.

1. **Write latency** of ``await store.update(fn)``, one small write at a time: ``fn`` reads one
   service through the transaction and changes its labels, or reads one task and changes its
   status. ``--writes`` of each after 30 of warm-up, sequential; then 16 writers at once, each
   on an object of its own (8 services, 8 tasks), 25 writes each. On memory; SQLite (WAL,
   ``synchronous=FULL``) in the temporary folder; etcd with one member; etcd with three members,
   through the etcd leader's member and through a follower's. On etcd, ``update`` returns once
   the store's watch has brought the commit back (a manager reads its own writes).
2. **A scheduler's transaction**: 10,000 tasks as the scheduler writes them (assigned to a
   node, on an overlay network) created in one ``update``, then all of them updated in one (the
   agents' reports); SQLite, and etcd with three members through a follower's member. Then
   one of those members is SIGKILLed and started again: whether it comes back (etcd 3.4
   cannot replay a WAL entry over 10 MB).
3. **Leadership failover**, on a 3-member cluster of its own: three managers, each an
   ``Election`` and a ``Store`` on an ``EtcdBackend`` over its own member's client. Once one
   leads and the three are reachable, the leader's member is SIGKILLed and its election
   cancelled at once; then (a) the time until a surviving manager's store accepts a write (a
   service created: the API writable again; a new probe every 0.1 s on each survivor, the
   first to return counts), (b) the time until another manager leads (its ``lead`` called),
   and (c) the time until the survivors' members have an etcd leader again (0 when the killed
   member was an etcd follower). Run ``--runs`` times with the manager's member the etcd
   leader (the worst case: etcd's own election on top of the lease) and ``--runs`` times with
   it an etcd follower; the killed member is started again and the cluster settles between
   runs; each run has a key prefix of its own.

Figures go to stdout and, unless ``--no-write``, into this script's section of
docs/benchmarks.md (earlier result rows kept, other sections untouched).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    exit_on_sigterm,
    load_average,
    log,
    machine,
    median,
    other_work,
    percentile,
    refuse_if_tests_run,
    write_section,
)
from swarmlet.aio import cancel_and_wait  # noqa: E402
from swarmlet.clock import SystemClock  # noqa: E402
from swarmlet.errors import Unavailable  # noqa: E402
from swarmlet.manager.etcd import (  # noqa: E402
    ClusterState,
    MemberConfig,
    Peer,
    client_ssl_context,
    client_tls,
    etcd_argv,
    member_tls,
    wait_healthy,
    write_member_tls,
)
from swarmlet.manager.etcd.client import EtcdClient  # noqa: E402
from swarmlet.manager.etcd.election import TTL_S, Election  # noqa: E402
from swarmlet.manager.leadership import Term  # noqa: E402
from swarmlet.manager.store import Backend, MemoryBackend, Op, Store, Tx  # noqa: E402
from swarmlet.manager.store.encryption import Cipher, new_dek  # noqa: E402
from swarmlet.manager.store.etcd import EtcdBackend  # noqa: E402
from swarmlet.manager.store.sqlite import SqliteBackend  # noqa: E402
from swarmlet.models import (  # noqa: E402
    ContainerSpec,
    Network,
    NetworkAttachment,
    NetworkAttachmentConfig,
    RootCA,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.models.network import IPAMConfig, NetworkIPAM  # noqa: E402
from swarmlet.pki.ca import new_root  # noqa: E402

SCRIPT = "store.py"
ADDRESS = "127.0.0.1"
CLUSTER = "bench-store"
WARMUP = 30
WRITERS = 16
WRITES_PER_WRITER = 25
TASKS = 10_000
BIG_RUNS = 3
HEALTHY_S = 30.0
RESTART_S = 20.0
STOP_GRACE_S = 5.0
PROBE_EVERY_S = 0.1
FAILOVER_LIMIT_S = 30.0
SETTLE_S = 3.0
TARGET_WRITABLE_S = 3.0
# etcd's defaults, which etcd_argv leaves as they are.
ETCD_HEARTBEAT_MS = 100
ETCD_ELECTION_MS = 1000


# --- etcd members ----------------------------------------------------------------------------


@dataclass
class Member:
    config: MemberConfig
    binary: str
    pids: set[int]
    process: subprocess.Popen[bytes] | None = None
    member_id: str = ""

    def start(self) -> None:
        with self.config.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", *etcd_argv(self.config, self.binary)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pids.add(self.process.pid)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def reap(self) -> None:
        assert self.process is not None
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def context(self) -> ssl.SSLContext:
        return client_ssl_context(self.config)

    def client(self) -> EtcdClient:
        return EtcdClient(self.config.client_url, client_tls(self.config))


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((ADDRESS, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def members(binary: str, state: Path, size: int, pids: set[int]) -> Iterator[list[Member]]:
    """``size`` members of a new cluster on 127.0.0.1 (each named in every ``--initial-cluster``),
    stopped by their PIDs after the block, whatever happens."""
    ports = free_ports(2 * size)
    names = [f"m{i}" for i in range(size)]
    peers = tuple(
        Peer(name, f"https://{ADDRESS}:{ports[2 * i + 1]}") for i, name in enumerate(names)
    )
    root = new_root(datetime.datetime.now(datetime.UTC))
    started: list[Member] = []
    try:
        for i, name in enumerate(names):
            config = MemberConfig(
                name=name,
                state_dir=state / f"etcd{size}-{name}",
                address=ADDRESS,
                cluster_token=f"{CLUSTER}-{size}",
                initial_cluster=peers,
                cluster_state=ClusterState.NEW,
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
            )
            tls = member_tls(
                RootCA(ca_cert=root.cert_pem, ca_key=root.key_pem),
                node_id=name,
                cluster_id=CLUSTER,
                address=ADDRESS,
                expiry=datetime.timedelta(days=1),
                now=datetime.datetime.now(datetime.UTC),
            )
            write_member_tls(config, tls)
            member = Member(config, binary, pids)
            member.start()
            started.append(member)
        yield started
    finally:
        for member in started:
            member.stop()


async def healthy(member: Member) -> None:
    async with member.client() as client:
        await wait_healthy(client, SystemClock(), HEALTHY_S)


async def status(member: Member) -> tuple[str, str]:
    """The member's ID and its etcd leader's ID ("0" when it has none)."""
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=member.context()),
            timeout=aiohttp.ClientTimeout(total=1),
        ) as session,
        session.post(f"{member.config.client_url}/v3/maintenance/status", json={}) as response,
    ):
        payload: dict[str, Any] = await response.json(content_type=None)
    return str(payload["header"]["member_id"]), str(payload.get("leader", "0"))


async def identify(cluster: list[Member]) -> int:
    """Fill in each member's ID; the index of the etcd leader."""
    leader = ""
    for member in cluster:
        member.member_id, leader = await status(member)
    return next(i for i, m in enumerate(cluster) if m.member_id == leader)


# --- objects and writes ----------------------------------------------------------------------


NETWORK = Network(
    id="net-frontend-0000000000001",
    name="frontend",
    labels={"com.docker.stack.namespace": "shop"},
    ipam=NetworkIPAM(config=[IPAMConfig(subnet="10.0.0.0/16", gateway="10.0.0.1")]),
    vni=4097,
)
TASK_SPEC = TaskSpec(
    container_spec=ContainerSpec(
        image="registry.local/shop/web:1.4.2@sha256:" + "ab" * 32,
        env=["MODE=production", "LOG_LEVEL=info", "UPSTREAM=http://api:8080"],
        labels={"com.docker.stack.namespace": "shop"},
    ),
    networks=[NetworkAttachmentConfig(target=NETWORK.id, aliases=["web"])],
)


def placed_tasks(count: int, tag: str = "") -> list[Task]:
    """Tasks as the scheduler writes them: assigned to a node, on an overlay network (the
    shape of tests/manager/store/test_etcd.py's)."""
    return [
        Task(
            id=f"task{tag}{i:021d}",
            service_id="svc-web-000000000000000001",
            service_name="shop_web",
            slot=i + 1,
            node_id=f"node{i % 1000:021d}",
            spec=TASK_SPEC,
            status=TaskStatus(state=TaskState.ASSIGNED, message="scheduler assigned task to node"),
            desired_state=TaskState.RUNNING,
            networks_attachments=[
                NetworkAttachment(network=NETWORK, addresses=[f"10.0.{i // 250}.{i % 250 + 2}/16"])
            ],
        )
        for i in range(count)
    ]


def service(index: int, tag: str = "") -> Service:
    return Service(
        id=f"svc{tag}{index:022d}",
        spec=ServiceSpec(name=f"bench{tag}-{index}", labels={"tier": "web"}),
    )


def relabel(service_id: str, count: int) -> Callable[[Tx], None]:
    def fn(tx: Tx) -> None:
        svc = tx.get(Service, service_id)
        labels = {**svc.spec.labels, "bench.count": str(count)}
        tx.update(svc.replace(spec=svc.spec.replace(labels=labels)))

    return fn


def report_status(task_id: str, count: int) -> Callable[[Tx], None]:
    def fn(tx: Tx) -> None:
        task = tx.get(Task, task_id)
        status = TaskStatus(
            state=TaskState.RUNNING,
            message=f"started ({count})",
            timestamp=datetime.datetime.now(datetime.UTC),
        )
        tx.update(task.replace(status=status))

    return fn


# --- 1. write latency ------------------------------------------------------------------------


@dataclass
class Latency:
    backend: str
    write: str
    times: list[float]

    def row(self) -> str:
        ms = [t * 1000 for t in self.times]
        return (
            f"| {self.backend} | {self.write} | {percentile(ms, 50):.2f} | "
            f"{percentile(ms, 90):.2f} | {percentile(ms, 99):.2f} | "
            f"{len(self.times) / sum(self.times):,.0f} |"
        )


@dataclass
class Concurrent:
    backend: str
    writes: int
    seconds: float


async def latency(name: str, store: Store, writes: int) -> tuple[list[Latency], Concurrent]:
    half = WRITERS // 2
    tasks = placed_tasks(half, "lat")
    await store.commit([Op.create(service(i, "lat")) for i in range(half)])
    await store.commit([Op.create(task) for task in tasks])
    svc_id, task_id = service(0, "lat").id, tasks[0].id
    results = []
    for label, make, object_id in (
        ("service labels", relabel, svc_id),
        ("task status", report_status, task_id),
    ):
        for i in range(WARMUP):
            await store.update(make(object_id, i))
        times = []
        for i in range(writes):
            began = time.perf_counter()
            await store.update(make(object_id, WARMUP + i))
            times.append(time.perf_counter() - began)
        results.append(Latency(name, label, times))
        log(f"{name}, {label}: {results[-1].row()}")

    async def writer(index: int, count: int, offset: int) -> None:
        for i in range(count):
            if index < half:
                await store.update(relabel(service(index, "lat").id, offset + i))
            else:
                await store.update(report_status(tasks[index - half].id, offset + i))

    async with asyncio.TaskGroup() as group:  # warm-up
        for index in range(WRITERS):
            group.create_task(writer(index, 2, 10_000))
    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index in range(WRITERS):
            group.create_task(writer(index, WRITES_PER_WRITER, 20_000))
    together = Concurrent(name, WRITERS * WRITES_PER_WRITER, time.perf_counter() - began)
    log(f"{name}, {WRITERS} writers: {together.writes / together.seconds:,.0f} writes/s")
    return results, together


# --- 2. the scheduler's transaction ----------------------------------------------------------


@dataclass
class Big:
    backend: str
    create: list[float] = field(default_factory=list)
    update: list[float] = field(default_factory=list)


async def big_transaction(big: Big, store: Store) -> None:
    tasks = placed_tasks(TASKS)
    began = time.perf_counter()
    await store.update(lambda tx: tx.write([Op.create(task) for task in tasks]))
    big.create.append(time.perf_counter() - began)
    assert len(store.all(Task)) == TASKS
    running = TaskStatus(state=TaskState.RUNNING, message="started")

    def report_all(tx: Tx) -> None:
        tx.write([Op.update(task.replace(status=running)) for task in tx.all(Task)])

    began = time.perf_counter()
    await store.update(report_all)
    big.update.append(time.perf_counter() - began)
    assert {task.status.state for task in store.all(Task)} == {TaskState.RUNNING}
    log(f"{big.backend}: {TASKS:,} tasks created in {big.create[-1]:.2f} s, updated in "
        f"{big.update[-1]:.2f} s")  # fmt: skip


async def restart_after_big(member: Member) -> str:
    """SIGKILL a member that holds the 10,000-task transactions and start it again: whether it
    comes back (etcd 3.4 cannot read a WAL entry over 10 MB on start: etcd-io/etcd#14114)."""
    member.kill()
    member.reap()
    began = time.monotonic()
    member.start()
    async with member.client() as client:
        with suppress(Unavailable):
            await wait_healthy(client, SystemClock(), RESTART_S)
            took = time.monotonic() - began
            log(f"{member.config.name} restarted after the 10,000-task transactions: {took:.1f} s")
            return f"came back healthy in {took:.1f} s"
    ended = member.process is not None and member.process.poll() is not None
    fatal = [line for line in member.config.log_path.read_text().splitlines() if '"fatal"' in line]
    said = fatal[-1].split('"error":"', 1)[-1].split('"', 1)[0] if fatal else "no fatal line"
    outcome = (
        f"did not come back within {RESTART_S:.0f} s ({'exited' if ended else 'running'}: {said})"
    )
    log(f"{member.config.name} restarted after the 10,000-task transactions: {outcome}")
    return outcome


# --- 3. failover -----------------------------------------------------------------------------


@dataclass
class Manager:
    member: Member
    client: EtcdClient
    store: Store
    election: Election
    led: asyncio.Event = field(default_factory=asyncio.Event)
    led_at: float = 0.0
    task: asyncio.Task[None] | None = None

    async def lead(self, term: Term) -> None:
        self.led_at = time.monotonic()
        self.led.set()
        await asyncio.Event().wait()

    def start(self) -> None:
        self.task = asyncio.create_task(self.election.run(self.lead), name=self.member.config.name)

    async def close(self) -> None:
        if self.task is not None:
            await cancel_and_wait(self.task)
        self.store.close()
        await self.client.close()


@dataclass
class Failover:
    run: int
    etcd_leader_killed: bool
    writable_s: float  # (a)
    leader_s: float  # (b)
    etcd_s: float  # (c)


async def open_manager(member: Member, cipher: Cipher, prefix: bytes) -> Manager:
    client = member.client()
    store = await Store.open(EtcdBackend(client, cipher, prefix), SystemClock())
    election = Election(client, member.config.name, SystemClock(), prefix=prefix)
    return Manager(member, client, store, election)


async def probe(store: Store, name: str) -> float:
    """Create a service through ``store`` until it is written: when it was."""
    svc = service(0, name)
    while True:
        try:
            await store.update(lambda tx: tx.create(svc))
            return time.monotonic()
        except Unavailable:
            await asyncio.sleep(PROBE_EVERY_S)


async def writable(survivors: list[Manager], run: int, probes: set[asyncio.Task[float]]) -> float:
    """When the first probe got its write in; a new probe on each survivor every 0.1 s."""
    number = 0
    while True:
        for manager in survivors:
            number += 1
            probes.add(asyncio.create_task(probe(manager.store, f"p{run}n{number}")))
        done = [p for p in probes if p.done() and not p.cancelled() and p.exception() is None]
        if done:
            return min(p.result() for p in done)
        await asyncio.sleep(PROBE_EVERY_S)


async def new_leader(survivors: list[Manager]) -> float:
    """When a survivor's ``lead`` was called."""
    waits = [asyncio.create_task(m.led.wait()) for m in survivors]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return min(m.led_at for m in survivors if m.led.is_set())


async def etcd_elected(survivor: Member, dead: Member) -> float:
    """When ``survivor`` knew of an etcd leader other than ``dead``."""
    while True:
        with suppress(OSError, aiohttp.ClientError, TimeoutError, KeyError, ValueError):
            _, leader = await status(survivor)
            if leader not in ("0", dead.member_id):
                return time.monotonic()
        await asyncio.sleep(0.02)


async def leading_with_all_reachable(victim: Manager, survivors: list[Manager]) -> None:
    """``victim`` leads (started first, alone), then the others run and all are reachable."""
    victim.start()
    await asyncio.wait_for(victim.led.wait(), HEALTHY_S)
    for manager in survivors:
        manager.start()
    names = {m.member.config.name for m in [victim, *survivors]}
    async with asyncio.timeout(HEALTHY_S):
        while await victim.election.reachable() != names:  # noqa: ASYNC110 (etcd, polled)
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    assert await survivors[0].election.leader() == victim.member.config.name


async def failover(cluster: list[Member], run: int, kill_etcd_leader: bool) -> Failover:
    prefix = f"/swarmlet-failover-{run}/".encode()
    cipher = Cipher(new_dek())
    etcd_leader = await identify(cluster)
    chosen = etcd_leader if kill_etcd_leader else (etcd_leader + 1) % len(cluster)
    managers = [await open_manager(member, cipher, prefix) for member in cluster]
    victim = managers[chosen]
    survivors = [m for m in managers if m is not victim]
    probes: set[asyncio.Task[float]] = set()
    try:
        await leading_with_all_reachable(victim, survivors)
        killed_leader = cluster[await identify(cluster)] is victim.member

        began = time.monotonic()
        victim.member.kill()
        assert victim.task is not None
        victim.task.cancel()
        victim.store.close()
        async with asyncio.timeout(FAILOVER_LIMIT_S):
            writable_at, leader_at, etcd_at = await asyncio.gather(
                writable(survivors, run, probes),
                new_leader(survivors),
                etcd_elected(survivors[0].member, victim.member) if killed_leader else sleep(0),
            )
    finally:
        for task in probes:
            task.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        for manager in managers:
            await manager.close()
    etcd_s = etcd_at - began if killed_leader else 0.0
    result = Failover(run, killed_leader, writable_at - began, leader_at - began, etcd_s)
    log(
        f"failover {run} (etcd leader killed: {killed_leader}): writable after "
        f"{result.writable_s:.2f} s, new leader after {result.leader_s:.2f} s, "
        f"etcd leader after {etcd_s:.2f} s"
    )
    return result


async def sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return 0.0


async def restart(member: Member, cluster: list[Member]) -> None:
    """The killed member started again with its data; the cluster healthy and settled."""
    member.reap()
    member.start()
    for each in cluster:
        await healthy(each)
    await asyncio.sleep(SETTLE_S)  # and every lease of the run before gone (TTL_S)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    latencies: list[Latency] = field(default_factory=list)
    concurrent: list[Concurrent] = field(default_factory=list)
    bigs: list[Big] = field(default_factory=list)
    failovers: list[Failover] = field(default_factory=list)
    restart: str = ""


async def measure(args: argparse.Namespace, binary: str, state: Path, pids: set[int]) -> Results:
    results = Results()

    async def on(name: str, backend: Backend) -> None:
        store = await Store.open(backend, SystemClock())
        try:
            found, together = await latency(name, store, args.writes)
        finally:
            store.close()
        results.latencies.extend(found)
        results.concurrent.append(together)

    await on("memory", MemoryBackend())
    await on("SQLite, sealed", SqliteBackend(state / "latency" / "store.db", Cipher(new_dek())))
    sqlite_big = Big("SQLite, sealed")
    for run in range(BIG_RUNS):
        store = await Store.open(
            SqliteBackend(state / f"big{run}" / "store.db", Cipher(new_dek())), SystemClock()
        )
        try:
            await big_transaction(sqlite_big, store)
        finally:
            store.close()
    results.bigs.append(sqlite_big)

    with members(binary, state, 1, pids) as one:
        await healthy(one[0])
        async with one[0].client() as client:
            await on("etcd, 1 member, sealed", EtcdBackend(client, Cipher(new_dek()), b"/lat/"))

    with members(binary, state, 3, pids) as three:
        for member in three:
            await healthy(member)
        await asyncio.sleep(SETTLE_S)
        leader = await identify(three)
        follower = (leader + 1) % 3
        for label, index, prefix in (
            ("etcd, 3 members, sealed, via the leader", leader, b"/lat-leader/"),
            ("etcd, 3 members, sealed, via a follower", follower, b"/lat-follower/"),
        ):
            async with three[index].client() as client:
                await on(label, EtcdBackend(client, Cipher(new_dek()), prefix))
        etcd_big = Big("etcd, 3 members, sealed, via a follower")
        for run in range(BIG_RUNS):
            async with three[follower].client() as client:
                store = await Store.open(
                    EtcdBackend(client, Cipher(new_dek()), f"/big{run}/".encode()), SystemClock()
                )
                try:
                    await big_transaction(etcd_big, store)
                finally:
                    store.close()
        results.bigs.append(etcd_big)
        results.restart = await restart_after_big(three[(leader + 2) % 3])

    results.failovers = await failovers(args.runs, binary, state / "failover", pids)
    return results


async def failovers(runs: int, binary: str, state: Path, pids: set[int]) -> list[Failover]:
    """``runs`` failovers of each kind, on a 3-member cluster of their own (one that has seen
    the 10,000-task transactions cannot start a killed member again: ``restart_after_big``)."""
    found: list[Failover] = []
    with members(binary, state, 3, pids) as three:
        for member in three:
            await healthy(member)
        await asyncio.sleep(SETTLE_S)
        run = 0
        for kill_etcd_leader in (True, False):
            for _ in range(runs):
                run += 1
                try:
                    found.append(await failover(three, run, kill_etcd_leader))
                finally:
                    victim = [m for m in three if m.process and m.process.poll() is not None]
                    for member in victim:
                        await restart(member, three)
    return found


# --- the report ------------------------------------------------------------------------------


def filesystem(path: Path) -> str:
    """The filesystem ``path`` is on: its device and type (from /proc/mounts)."""
    best = ("", "?", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind, *_ = line.split()
        if str(path).startswith(mount) and len(mount) >= len(best[0]):
            best = (mount, device, kind)
    return f"{best[2]} on {best[1]}"


def report(results: Results, state: Path, load: str, others: str) -> str:
    lines = [
        f"Machine: {machine(engine=False)}, etcd {etcd_version()}. Load average {load}. "
        f"Other work: {others}.",
        f"State folder: {state.parent}/ ({filesystem(state)}).",
        "",
        "| backend | write | p50 ms | p90 ms | p99 ms | writes/s (1 writer) |",
        "|---|---|---:|---:|---:|---:|",
        *(found.row() for found in results.latencies),
        "",
        f"| backend | writes/s, {WRITERS} writers on objects of their own |",
        "|---|---:|",
        *(f"| {c.backend} | {c.writes / c.seconds:,.0f} |" for c in results.concurrent),
        "",
        "| backend | 10,000 tasks created, s | updated, s | runs (create / update) |",
        "|---|---:|---:|---|",
    ]
    for big in results.bigs:
        runs = ", ".join(f"{c:.2f} / {u:.2f}" for c, u in zip(big.create, big.update, strict=True))
        lines.append(
            f"| {big.backend} | {median(big.create):.2f} | {median(big.update):.2f} | {runs} |"
        )
    lines += [
        "",
        "| run | the leader's member was | (a) writable, s | (b) new leader, s | "
        "(c) etcd leader, s | (b) - (c), s |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for f in results.failovers:
        role = "etcd's leader" if f.etcd_leader_killed else "an etcd follower"
        lines.append(
            f"| {f.run} | {role} | {f.writable_s:.2f} | {f.leader_s:.2f} | {f.etcd_s:.2f} | "
            f"{f.leader_s - f.etcd_s:.2f} |"
        )
    for killed, role in ((True, "etcd's leader"), (False, "an etcd follower")):
        kind = [f for f in results.failovers if f.etcd_leader_killed is killed]
        if kind:
            lines.append(
                f"| median | {role} ({len(kind)} runs) | "
                f"**{median([f.writable_s for f in kind]):.2f}** | "
                f"**{median([f.leader_s for f in kind]):.2f}** | "
                f"{median([f.etcd_s for f in kind]):.2f} | "
                f"{median([f.leader_s - f.etcd_s for f in kind]):.2f} |"
            )
    lines += [
        "",
        f"A member of the 3-member cluster SIGKILLed after the {TASKS:,}-task transactions and "
        f"started again with its data: {results.restart}.",
    ]
    worst = max((f.writable_s for f in results.failovers), default=float("nan"))
    met = "met" if worst <= TARGET_WRITABLE_S else "NOT met"
    lines += [
        "",
        f"Slowest (a) over every run: {worst:.2f} s: target ≤ {TARGET_WRITABLE_S:.0f} s {met}. "
        f"Lease TTL (`TTL_S`) {TTL_S} s; etcd's heartbeat {ETCD_HEARTBEAT_MS} ms and election "
        f"timeout {ETCD_ELECTION_MS} ms (its defaults).",
    ]
    return "\n".join(lines)


def etcd_version() -> str:
    binary = shutil.which("etcd") or "etcd"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = out.stdout.splitlines()[0] if out.stdout else "?"
    return first.removeprefix("etcd Version: ")


TABLE_HEAD = (
    "| date (UTC) | SQLite p50 ms (labels/status) | etcd x3 p50 ms via follower | "
    "etcd x3 writes/s, 16 writers | 10,000 tasks etcd x3 create / update s | "
    "writable after, median s (etcd leader killed / follower) | new leader, median s |\n"
    "|---|---:|---:|---:|---:|---:|---:|"
)


def row(date: str, results: Results) -> str:
    def p50(backend: str, write: str) -> float:
        found = next(x for x in results.latencies if x.backend.startswith(backend) and
                     x.write == write)  # fmt: skip
        return percentile(found.times, 50) * 1000

    etcd3 = "etcd, 3 members, sealed, via a follower"
    together = next(c for c in results.concurrent if c.backend == etcd3)
    big = next(b for b in results.bigs if b.backend == etcd3)
    killed = [f for f in results.failovers if f.etcd_leader_killed]
    follower = [f for f in results.failovers if not f.etcd_leader_killed]

    def med(runs: list[Failover], attribute: str) -> str:
        return f"{median([getattr(f, attribute) for f in runs]):.2f}"

    return (
        f"| {date} | {p50('SQLite', 'service labels'):.2f} / {p50('SQLite', 'task status'):.2f}"
        f" | {p50(etcd3, 'service labels'):.2f} / {p50(etcd3, 'task status'):.2f}"
        f" | {together.writes / together.seconds:,.0f}"
        f" | {median(big.create):.2f} / {median(big.update):.2f}"
        f" | {med(killed, 'writable_s')} / {med(follower, 'writable_s')}"
        f" | {med(killed, 'leader_s')} / {med(follower, 'leader_s')} |"
    )


def render(args: argparse.Namespace, date: str, text: str) -> Callable[[list[str]], str]:
    def section(rows: list[str]) -> str:
        return f"""
## The store: write latency on SQLite and etcd, and leadership failover (issue 14, point 7)

`benchmarks/store.py` (one command: `.venv/bin/python benchmarks/store.py`; no lab, no
engine) starts its own etcd members (Debian's `etcd-server`) on 127.0.0.1 — `etcd_argv`'s
command line: TLS with client certificates on both ports, the store's raised txn limits, etcd's
default heartbeat ({ETCD_HEARTBEAT_MS} ms) and election timeout ({ETCD_ELECTION_MS} ms) — on
ports the kernel gives and in a temporary folder, as plain children stopped by their PIDs at the
end. SQLite and etcd hold the objects sealed (AES-256-GCM), as a manager's store does; every
member and the SQLite file share the one disk of the machine.

- **Write latency**: `await store.update(fn)`, `fn` reading one service through the
  transaction and changing its labels, or one task and changing its status; {args.writes} of
  each after {WARMUP} of warm-up, one at a time (percentiles of each write's wall time, and
  writes/s as their count over their sum); then {WRITERS} writers at once, each on an object
  of its own (8 services, 8 tasks), {WRITES_PER_WRITER} writes each. On memory; SQLite (WAL,
  `synchronous=FULL`); etcd with one member; etcd with three members, the store on the etcd
  leader's member, and on a follower's (its writes forwarded to the leader). On etcd `update`
  returns once the store's watch has brought the commit back.
- **A scheduler's transaction**: 10,000 tasks as the scheduler writes them (assigned, on an
  overlay network; about 1.1 KB each sealed) created in one `update`, then all updated in one
  (the agents' reports batched); {BIG_RUNS} runs each, a new SQLite file or etcd prefix each.
  Then one etcd member that holds them is SIGKILLed and started again with its data: does it
  come back?
- **Leadership failover**, on a 3-member cluster of its own: three managers, each an
  `Election` (lease TTL `TTL_S` = {TTL_S} s,
  keepalive every 0.5 s, followers polling the leader key every 0.25 s) and a `Store` on an
  `EtcdBackend` over its own member's client. Once one leads and all three are reachable, its
  member is SIGKILLed and its election cancelled at the same moment; then **(a)** the time
  until a surviving manager's store accepts a write (a service created; a new probe every
  0.1 s on each survivor, the first to return counts: the API is writable again), **(b)** the
  time until another manager leads (its `lead` called), **(c)** the time until the survivors'
  members have a new etcd leader (0 when the dead member was an etcd follower). {args.runs}
  runs with the dead manager's member etcd's leader (the worst case: etcd's own election
  first) and {args.runs} with it an etcd follower; the member is started again with its data
  and the cluster left to settle between runs. Target for (a): ≤ {TARGET_WRITABLE_S:.0f} s
  (Swarm's default election takes about 10 s).

### Results

{TABLE_HEAD}
{chr(10).join(rows)}

### Latest run ({date} UTC)

{text}
"""

    return section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300, help="measured writes (30..3000)")
    parser.add_argument("--runs", type=int, default=5, help="failovers of each kind (1..10)")
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    args = parser.parse_args()
    if not (30 <= args.writes <= 3000 and 1 <= args.runs <= 10):
        parser.error("writes must be 30..3000, runs 1..10")
    binary = shutil.which("etcd")
    if binary is None:
        parser.error("no etcd: scripts/bootstrap.sh installs etcd-server")
    refuse_if_tests_run(parser.error)
    exit_on_sigterm()
    load_before, others = load_average(), other_work()
    pids: set[int] = set()
    state = Path(tempfile.mkdtemp(prefix="swarmlet-bench-store-"))
    try:
        log(f"state in {state} ({filesystem(state)})")
        results = asyncio.run(measure(args, binary, state, pids))
    finally:
        for pid in pids:  # every member is stopped already; a PID still ours is killed
            with suppress(ProcessLookupError, ChildProcessError):
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
        shutil.rmtree(state, ignore_errors=True)
    text = report(results, state, f"before {load_before}, after {load_average()}", others)
    print()
    print(text)
    if not args.no_write:
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
        write_section(SCRIPT, render(args, date, text), [row(date, results)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
