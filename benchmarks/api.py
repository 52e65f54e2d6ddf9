"""Latency of the manager API's list endpoints with 1,000 services and their tasks.

    .venv/bin/python benchmarks/api.py [--services 1000] [--history 2] [--nodes 10]
                                       [--requests 50] [--no-profile] [--no-write]

No lab and no containers: the real API application (``swarmlet.manager.api.make_app``) is
served on a unix socket, as swarmletd serves it, by a child process of this script, over an
in-memory store filled directly:

- the cluster, the ingress network and ``--nodes`` ready nodes (the first one the leader);
- ``--services`` replicated services (``svc-0000``…), each of 1 replica: its running task
  (assigned to a node, round robin, with its container's ID and PID) and ``--history`` tasks
  that ran before it and are shut down (as ``--task-history-limit`` keeps them).

This script, the client (aiohttp over the same socket, one keep-alive connection), times from
sending each request to having read the whole body, ``--requests`` times each after 5 warm-up
requests, one request at a time:

- ``service ls``: ``GET /v1.47/services?status=true`` (what ``docker service ls`` sends);
- ``service ps`` of one service: ``GET /v1.47/services?filters={"name":…}`` (the CLI looks the
  service up by ID, then by name) and ``GET /v1.47/tasks?filters={"service":{ID}}``;
- every task: ``GET /v1.47/tasks``, and ``GET /v1.47/tasks?filters={"desired-state":…}``.

Then, unless ``--no-profile``, a second server runs under cProfile while the same requests are
made again, and the functions that take the most time are printed. The figures (median, p95)
are printed and written into ``docs/benchmarks.md`` (this script's section replaced, earlier
result rows kept, other sections untouched).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    Api,
    filters,
    fmt_s,
    load_average,
    log,
    machine,
    median,
    other_work,
    percentile,
    write_section,
)
from swarmlet import collector
from swarmlet.api import make_app
from swarmlet.api.control import LocalNodeState
from swarmlet.clock import SystemClock
from swarmlet.ids import new_id
from swarmlet.manager.allocator import ingress_network
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.store import Op, Store
from swarmlet.models import (
    Cluster,
    JoinTokens,
    ManagerStatus,
    Node,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)
from swarmlet.models.task import ContainerStatus

SCRIPT = "api.py"
V = "/v1.47"
TARGET_LS_MS = 100.0
WARM_UP = 5
TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-"


# --- the server (a child process) ------------------------------------------------------------


@dataclass
class BenchControl:
    """What swarmletd gives the API on an active leader; the swarm verbs are not used here."""

    store: Store
    node_id: str
    state: LocalNodeState = LocalNodeState.ACTIVE
    node_addr: str = "10.0.0.1"
    manager_addrs: list[str] = field(default_factory=lambda: ["10.0.0.1:2377"])
    engine_socket: str = "/var/run/docker.sock"

    @property
    def cluster(self) -> LocalCluster:
        return LocalCluster(self.store)

    async def init(self, request: object) -> str:
        raise NotImplementedError

    async def join(self, request: object) -> None:
        raise NotImplementedError

    async def leave(self, force: bool) -> None:
        raise NotImplementedError

    async def unlock(self, key: str) -> None:
        raise NotImplementedError

    def unlock_key(self) -> str:
        return ""

    async def set_autolock(self, enabled: bool, rotate: bool) -> str:
        raise NotImplementedError


def make_node(index: int) -> Node:
    addr = f"10.0.{index // 250}.{index % 250 + 1}"
    description = {
        "Hostname": f"node{index + 1}",
        "Platform": {"Architecture": "x86_64", "OS": "linux"},
        "Resources": {"NanoCPUs": 2_000_000_000, "MemoryBytes": 4 * 2**30},
        "Engine": {"EngineVersion": "20.10.24", "Labels": {}, "Plugins": []},
    }
    leader = index == 0
    return Node(
        id=new_id(),
        spec=NodeSpec(role=NodeRole.MANAGER if leader else NodeRole.WORKER),
        description=NodeDescription.from_api(description),
        status=NodeStatus(state=NodeState.READY, addr=addr),
        manager_status=ManagerStatus(leader=True, addr=f"{addr}:2377") if leader else None,
    )


def service_spec(index: int) -> ServiceSpec:
    """A spec as ``docker service create`` sends it."""
    return ServiceSpec.from_api(
        {
            "Name": f"svc-{index:04d}",
            "Labels": {"tier": "web" if index % 2 else "worker", "team": f"t{index % 7}"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "swarmlet-test/busybox:latest",
                    "Args": ["sleep", "1d"],
                    "Env": [f"INDEX={index}", "MODE=bench"],
                    "Init": False,
                    "StopGracePeriod": 10_000_000_000,
                    "DNSConfig": {},
                    "Isolation": "default",
                },
                "Resources": {"Limits": {}, "Reservations": {}},
                "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0},
                "Placement": {},
                "ForceUpdate": 0,
                "Runtime": "container",
            },
            "Mode": {"Replicated": {"Replicas": 1}},
            "UpdateConfig": {"Parallelism": 1, "FailureAction": "pause", "Order": "stop-first"},
            "EndpointSpec": {"Mode": "vip"},
        }
    )


def make_task(service: Service, node: Node, state: TaskState, desired: TaskState) -> Task:
    now = datetime.datetime.now(datetime.UTC)
    running = state is TaskState.RUNNING
    return Task(
        id=new_id(),
        service_id=service.id,
        service_name=service.spec.name,
        slot=1,
        node_id=node.id,
        spec=TaskSpec.from_api(service.spec.task_template.to_api()),
        spec_version=service.spec_version,
        status=TaskStatus(
            timestamp=now,
            state=state,
            message="started" if running else "shutdown",
            container_status=ContainerStatus(
                container_id=new_id() + new_id()[:39],
                pid=4242 if running else 0,
                exit_code=None if running else 137,
            ),
        ),
        desired_state=desired,
    )


async def fill(services: int, history: int, nodes: int) -> BenchControl:
    """A store as a leader's would be with that many services, tasks and nodes."""
    store = Store(clock=SystemClock())
    cluster = Cluster(
        id=new_id(), join_tokens=JoinTokens(worker=TOKEN + "w" * 25, manager=TOKEN + "m" * 25)
    )
    await store.commit([Op.create(cluster), Op.create(ingress_network(new_id()))])
    placed = [(await store.commit([Op.create(make_node(i))]))[0] for i in range(nodes)]
    all_nodes: list[Node] = [n for n in placed if isinstance(n, Node)]
    for index in range(services):
        service = Service(id=new_id(), spec=service_spec(index), spec_version=Version(index=1))
        ops = [Op.create(service)]
        for past in range(history):
            node = all_nodes[(index + past + 1) % nodes]
            ops.append(Op.create(make_task(service, node, TaskState.SHUTDOWN, TaskState.SHUTDOWN)))
        node = all_nodes[index % nodes]
        ops.append(Op.create(make_task(service, node, TaskState.RUNNING, TaskState.RUNNING)))
        await store.commit(ops)
    return BenchControl(store=store, node_id=all_nodes[0].id)


async def serve(socket_path: str, args: argparse.Namespace) -> None:
    control = await fill(args.services, args.history, args.nodes)
    # As swarmletd does once its store is loaded (swarmlet/collector.py).
    collector.tune_for_a_long_lived_store()
    runner = web.AppRunner(make_app(control, SystemClock()), access_log=None)
    await runner.setup()
    await web.UnixSite(runner, socket_path).start()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    # Only the serving is profiled, not the filling of the store.
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    print("ready", flush=True)
    try:
        await stopping.wait()
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        await runner.cleanup()


# --- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    params: dict[str, str] | None


def endpoints(one_service: dict[str, Any]) -> list[Endpoint]:
    sid, name = one_service["ID"], one_service["Spec"]["Name"]
    return [
        Endpoint("service ls", f"{V}/services", {"status": "true"}),
        Endpoint("service ps: lookup by name", f"{V}/services", filters(name=[name])),
        Endpoint("service ps: its tasks", f"{V}/tasks", filters(service=[sid])),
        Endpoint("tasks: all", f"{V}/tasks", None),
        Endpoint("tasks: desired running", f"{V}/tasks", filters(desired_state=["running"])),
    ]


@dataclass
class Timing:
    endpoint: Endpoint
    ms: list[float]
    size: int  # bytes of the last answer
    count: int  # objects in it


async def time_requests(socket_path: str, requests: int) -> tuple[list[Timing], dict[str, Any]]:
    async with Api(f"unix://{socket_path}") as api:
        services = await api.get(f"{V}/services")
        tasks = await api.get(f"{V}/tasks")
        shape = {"services": len(services), "tasks": len(tasks)}
        middle = sorted(services, key=lambda s: s["Spec"]["Name"])[len(services) // 2]
        timings = []
        for endpoint in endpoints(middle):
            ms: list[float] = []
            body = b""
            for i in range(WARM_UP + requests):
                start = time.perf_counter()
                body = await api.raw("GET", endpoint.path, endpoint.params)
                elapsed = (time.perf_counter() - start) * 1000
                if i >= WARM_UP:
                    ms.append(elapsed)
            timings.append(Timing(endpoint, ms, len(body), len(json.loads(body))))
            log(
                f"{endpoint.name:28} median {median(ms):7.2f} ms  p95 {percentile(ms, 95):7.2f} ms"
                f"  ({len(json.loads(body))} objects, {len(body) / 1024:.0f} KiB)"
            )
        return timings, shape


class Server:
    """This script again, as a child process serving the API on a temporary socket."""

    def __init__(self, args: argparse.Namespace, profile: str | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="swl-api-")
        self.socket = os.path.join(self._folder.name, "api.sock")
        argv = [
            sys.executable, __file__, "--serve", self.socket,
            "--services", str(args.services), "--history", str(args.history),
            "--nodes", str(args.nodes),
        ]  # fmt: skip
        if profile:
            argv += ["--profile", profile]
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> Server:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line.strip() != "ready":
            self._process.kill()
            raise RuntimeError(f"the API server did not start (exit {self._process.wait()})")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._folder.cleanup()


def hot_spots(stats_file: str, limit: int = 15) -> str:
    out = io.StringIO()
    stats = pstats.Stats(stats_file, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    text = out.getvalue()
    # From the table's header on: the preamble names temporary files.
    start = text.find("   ncalls")
    return text[start:].rstrip() if start >= 0 else text.rstrip()


def profile(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="swl-prof-") as folder:
        stats_file = os.path.join(folder, "api.prof")
        log("profiling: the same requests against a server under cProfile")
        with Server(args, profile=stats_file) as server:
            asyncio.run(time_requests(server.socket, min(args.requests, 20)))
        return hot_spots(stats_file)


# --- reporting -------------------------------------------------------------------------------


def method(args: argparse.Namespace) -> str:
    return (
        f"make_app on a unix socket (child process), in-memory store: {args.services} services "
        f"x (1 running + {args.history} shut-down tasks), {args.nodes} nodes; aiohttp client, "
        f"keep-alive, {args.requests} sequential requests per endpoint after {WARM_UP} warm-up"
    )


TABLE_HEAD = (
    "| date (UTC) | machine | method | `service ls` median / p95 (ms) | ≤ 100 ms? "
    "| `service ps` one: lookup + tasks (ms) | all tasks (ms) |\n"
    "|---|---|---|---:|---|---:|---:|"
)


def row(date: str, args: argparse.Namespace, timings: list[Timing]) -> str:
    by = {t.endpoint.name: t for t in timings}
    ls = by["service ls"].ms
    ps = median(by["service ps: lookup by name"].ms) + median(by["service ps: its tasks"].ms)
    met = "yes" if median(ls) <= TARGET_LS_MS else "**no**"
    return (
        f"| {date} | {machine()} | {method(args)} | **{median(ls):.1f}** / "
        f"{percentile(ls, 95):.1f} | {met} | {ps:.1f} | {median(by['tasks: all'].ms):.1f} |"
    )


def details(timings: list[Timing], shape: dict[str, Any], hot: str | None, load: str) -> str:
    lines = [
        f"Store: {shape['services']} services, {shape['tasks']} tasks. Load average: {load}.",
        "",
        "| request | median ms | p95 ms | min ms | max ms | objects | KiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        params = (
            ""
            if t.endpoint.params is None
            else "?" + "&".join(f"{k}={v}" for k, v in t.endpoint.params.items())
        )
        lines.append(
            f"| {t.endpoint.name}: `GET {t.endpoint.path}{params}` | {median(t.ms):.2f} | "
            f"{percentile(t.ms, 95):.2f} | {min(t.ms):.2f} | {max(t.ms):.2f} | {t.count} | "
            f"{t.size / 1024:.0f} |"
        )
    if hot:
        lines += [
            "",
            "Hot spots (cProfile of the server over the same requests, by own time):",
            "",
            "```",
            hot,
            "```",
        ]
    return "\n".join(lines)


def render(args: argparse.Namespace, date: str, text: str) -> Callable[[list[str]], str]:
    def section(rows: list[str]) -> str:
        return f"""
## Manager API latency with 1,000 services (issue 5, point 3)

`benchmarks/api.py` (one command: `.venv/bin/python benchmarks/api.py`; no root, no lab, no
containers) serves the real API application (`swarmlet.api.make_app`) on a unix socket
from a child process, as swarmletd does, over an in-memory store filled directly:
{args.services} replicated services of 1 replica, each with its running task and {args.history}
shut-down ones (the history `--task-history-limit` keeps), on {args.nodes} ready nodes; then
the garbage collector is set as swarmletd sets it once its store is loaded
(`swarmlet/collector.py`). The client (aiohttp on the same socket, one keep-alive connection)
times each request from sending it to having read the whole answer, one at a time,
{args.requests} times per request after {WARM_UP} warm-up ones; the figures are the median and
the 95th percentile (nearest rank). Requests: `service ls` = `GET /services?status=true` (what
`docker service ls` sends); `service ps` of one service = its lookup (`GET
/services?filters={{"name":…}}`; the CLI also looks it up by ID, which costs the same) and `GET
/tasks?filters={{"service":…}}`; every task = `GET /tasks`, unfiltered and filtered by desired
state. Target: `service ls` ≤ {TARGET_LS_MS:.0f} ms.

### Results

{TABLE_HEAD}
{chr(10).join(rows)}

### Latest run ({date} UTC)

{text}
"""

    return section


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000, help="services (1..10000)")
    parser.add_argument("--history", type=int, default=2, help="shut-down tasks per service")
    parser.add_argument("--nodes", type=int, default=10, help="nodes (1..1000)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per endpoint")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile pass")
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the child: serve on this socket
    parser.add_argument("--profile", help=argparse.SUPPRESS)  # the child: cProfile into this
    args = parser.parse_args()
    if not (1 <= args.services <= 10_000 and 0 <= args.history <= 10):
        parser.error("services must be 1..10000 and history 0..10")
    if not (1 <= args.nodes <= 1000 and 1 <= args.requests <= 1000):
        parser.error("nodes must be 1..1000 and requests 1..1000")
    if args.serve:
        asyncio.run(serve(args.serve, args))
        return 0

    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before, others_before = load_average(), other_work()
    log(f"filling a store with {args.services} services and serving it")
    with Server(args) as server:
        timings, shape = asyncio.run(time_requests(server.socket, args.requests))
    hot = None if args.no_profile else profile(args)
    load = (
        f"{load_before} before, {load_average()} after; other work on the machine at the "
        f"start: {others_before}; at the end: {other_work()}"
    )
    ls = next(t for t in timings if t.endpoint.name == "service ls").ms
    verdict = "met" if median(ls) <= TARGET_LS_MS else "NOT met"
    print()
    print(f"machine: {machine()}")
    print(f"method:  {method(args)}")
    for t in timings:
        print(
            f"{t.endpoint.name:28} median {fmt_s(median(t.ms))} ms  "
            f"p95 {fmt_s(percentile(t.ms, 95))} ms  ({t.count} objects, {t.size / 1024:.0f} KiB)"
        )
    print(f"service ls median {median(ls):.1f} ms: target ≤ {TARGET_LS_MS:.0f} ms {verdict}")
    if hot:
        print("\nhot spots (server, cProfile, by own time):\n" + hot)
    if not args.no_write:
        text = details(timings, shape, hot, load)
        write_section(SCRIPT, render(args, date, text), [row(date, args, timings)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
