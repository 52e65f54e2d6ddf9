"""10,000 tasks on 1,000 simulated nodes: time to all RUNNING, and the manager's memory.

    .venv/bin/python benchmarks/scale.py [--nodes 1000] [--tasks 10000] [--rounds 1]
                                         [--only plain|constraint|preference] [--no-write]

As root, with no test or CI run going on (it refuses to start while one is). On the
benchmarks' lab (``swlb``) of 2 hosts: node1 is the manager, a real ``swarmletd`` (its SQLite
store encrypted, as always); node2 is a worker, a real ``swarmletd`` on the machine's engine.
Both are drained, so that the simulated nodes take every task of the big services. Then:

1. ``swarmlet sim nodes --count 1000`` (a child process in the root namespace, reaching node1
   across the lab's bridge): 1,000 agents, each with its own certificate, session and
   heartbeats, whose tasks go through every state to RUNNING on a simulated engine (start
   latency 50 ms ± 50 %, no failures) in 5 zones (engine label ``sim.zone``). Wait until every
   node is Ready.
2. Idle figures: resident memory (``VmRSS``) of node1's swarmletd (the manager, with its own
   agent), of node2's swarmletd (an agent) and of the simulator.
3. For each variant — **plain**; **constraint** ``engine.labels.sim.zone==zone-1`` (200 of the
   nodes); **preference** ``--placement-pref spread=engine.labels.sim.zone`` — ``docker service
   create --detach --replicas 10000`` of ``swarmlet-test/busybox:latest``; the clock starts
   before the CLI is run and stops when ``GET /services?status=true`` (what ``docker service
   ls`` asks, polled every 200 ms) shows 10,000 running tasks. The manager's resident memory
   is read then, at 10,000 RUNNING tasks. The service is removed and the script waits until
   its tasks are gone.
4. The agent at work: node2 made active, a service of 20 real containers pinned to it, and its
   swarmletd's resident memory read once they run.

The figures are printed and written into ``docs/benchmarks.md`` (this script's section
replaced, earlier result rows kept). The lab and the simulator are ended whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    IMAGE,
    ROOT,
    Api,
    docker,
    exit_on_sigterm,
    filters,
    fmt_s,
    load_average,
    log,
    machine,
    other_work,
    own_lab,
    refuse_if_tests_run,
    write_section,
)
from swarmlet.lab.lab import Lab

SCRIPT = "scale.py"
SIM_LOG = Path("/tmp/swarmlet-bench-simulator.log")  # kept after the run, for a post-mortem
ZONES = 5
POLL_S = 0.2
JOIN_S = 300.0
CONVERGE_S = 300.0
AGENT_TASKS = 20
TARGET_RUNNING_S = 10.0
TARGET_MANAGER_MB = 300.0
TARGET_AGENT_MB = 60.0
MB_PER_MIB = 1.048576  # the targets are in MB, /proc's figures in KiB


@dataclass(frozen=True)
class Variant:
    name: str
    flags: tuple[str, ...]


VARIANTS = (
    Variant("plain", ()),
    Variant("constraint", ("--constraint", "engine.labels.sim.zone==zone-1")),
    Variant("preference", ("--placement-pref", "spread=engine.labels.sim.zone")),
)


@dataclass
class Run:
    variant: str
    running_s: float  # from `service create` to every task RUNNING; NaN if not within the limit
    manager_mib: float  # the manager's VmRSS with every task running
    removed_s: float  # from `service rm` to no task left


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


def daemon_pid(lab: Lab, node: str) -> int:
    return int(lab.host(node).pid_file.read_text().split()[0])


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], seconds: float) -> float:
    """Poll ``check`` every POLL_S until it is truthy; the seconds it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > seconds:
            raise RuntimeError(f"{what}: not within {seconds:.0f} s")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - start


class Simulator:
    """``swarmlet sim nodes`` as a child process, ended (SIGINT, then SIGKILL) on exit."""

    def __init__(self, manager: str, token: str, count: int, log_file: Path) -> None:
        argv = [
            str(ROOT / ".venv" / "bin" / "swarmlet"), "sim", "nodes",
            "--manager", manager, "--token", token, "--count", str(count),
            "--start-latency", "0.05", "--jitter", "0.5", "--zones", str(ZONES),
            "--seed", "1", "--report-every", "0",
        ]  # fmt: skip
        self._log = log_file.open("w")
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


async def running_of(api: Api, service_id: str) -> int:
    services = await api.get("/services", {"status": "true", **filters(id=[service_id])})
    return sum(s.get("ServiceStatus", {}).get("RunningTasks", 0) for s in services or [])


async def task_count(api: Api) -> int:
    """Every task in the swarm (only this script's services are there)."""
    return len(await api.get("/tasks") or [])


class Profiler:
    """``py-spy record`` of a process while the block runs (raw, collapsed stacks), if asked."""

    def __init__(self, pid: int, output: Path | None) -> None:
        self._argv = [
            str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(pid),
            "--format", "raw", "--rate", "200", "--output", str(output),
        ]  # fmt: skip
        self._output = output
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self._output is not None:
            self._process = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL)
            time.sleep(0.5)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            self._process.wait(timeout=60)


async def one_variant(
    lab: Lab, api: Api, variant: Variant, args: argparse.Namespace, manager: int, simulator: int
) -> Run:
    tasks = args.tasks
    log(f"{variant.name}: service create --replicas {tasks}")
    profile = Path(f"{args.profile}.{variant.name}") if args.profile else None
    profiler = Profiler(manager, profile).__enter__()
    sim_profile = profile.with_name(profile.name + ".simulator") if profile else None
    sim_profiler = Profiler(simulator, sim_profile).__enter__()
    start = time.monotonic()
    service_id = docker(
        lab.docker_host, "service", "create", "--detach", "--quiet", "--no-resolve-image",
        "--name", f"scale-{variant.name}", "--replicas", str(tasks), *variant.flags,
        IMAGE, "sleep", "1d",
    ).strip()  # fmt: skip

    async def all_running() -> bool:
        return await running_of(api, service_id) >= tasks

    try:
        await wait_for(f"{tasks} tasks running", all_running, CONVERGE_S)
        running_s = time.monotonic() - start
    except RuntimeError as exc:
        log(str(exc))
        running_s = math.nan
    manager_mib = rss_mib(manager)
    profiler.__exit__()
    sim_profiler.__exit__()
    log(f"{variant.name}: {fmt_s(running_s)} s to {tasks} running; manager {manager_mib:.0f} MiB")
    start = time.monotonic()
    docker(lab.docker_host, "service", "rm", service_id)

    async def gone() -> bool:
        return await task_count(api) == 0

    removed_s = await wait_for("the service's tasks gone", gone, CONVERGE_S)
    log(f"{variant.name}: removed in {removed_s:.1f} s")
    return Run(variant.name, running_s, manager_mib, removed_s)


async def agent_at_work(lab: Lab, api: Api, agent: int) -> float:
    """node2's swarmletd's resident memory with AGENT_TASKS real containers running on it."""
    docker(lab.docker_host, "node", "update", "--availability", "active", "node2")
    service_id = docker(
        lab.docker_host, "service", "create", "--detach", "--quiet", "--no-resolve-image",
        "--name", "scale-agent", "--replicas", str(AGENT_TASKS),
        "--constraint", "node.hostname==node2", "--stop-grace-period", "1s",
        IMAGE, "sleep", "1d",
    ).strip()  # fmt: skip

    async def all_running() -> bool:
        return await running_of(api, service_id) >= AGENT_TASKS

    await wait_for(f"{AGENT_TASKS} containers running on node2", all_running, CONVERGE_S)
    await asyncio.sleep(2)
    mib = rss_mib(agent)
    docker(lab.docker_host, "service", "rm", service_id)

    async def gone() -> bool:
        return await task_count(api) == 0

    await wait_for("node2's tasks gone", gone, CONVERGE_S)
    return mib


@dataclass
class Figures:
    runs: list[Run]
    joined_s: float
    manager_idle: float
    agent_idle: float
    agent_busy: float
    simulator_idle: float
    simulator_peak: float
    manager_peak: float


async def measure(lab: Lab, args: argparse.Namespace, sim_log: Path) -> Figures:
    for node in ("node1", "node2"):
        docker(lab.docker_host, "node", "update", "--availability", "drain", node)
    token = docker(lab.docker_host, "swarm", "join-token", "-q", "worker").strip()
    manager, agent = daemon_pid(lab, "node1"), daemon_pid(lab, "node2")
    async with Api(lab.docker_host) as api:
        log(f"{args.nodes} simulated nodes joining")
        with Simulator(lab.host("node1").listen_addr, token, args.nodes, sim_log) as sim:

            async def all_ready() -> bool:
                if sim.process.poll() is not None:
                    raise RuntimeError(f"the simulator ended: see {sim_log}")
                nodes = await api.get("/nodes") or []
                ready = [n for n in nodes if n["Status"]["State"] == "ready"]
                return len(ready) >= args.nodes + 2

            joined_s = await wait_for("every simulated node ready", all_ready, JOIN_S)
            log(f"{args.nodes} nodes ready in {joined_s:.1f} s")
            await asyncio.sleep(5)  # let the joins' garbage go
            manager_idle, agent_idle = rss_mib(manager), rss_mib(agent)
            simulator_idle = rss_mib(sim.process.pid)
            runs = []
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    if args.only in (None, variant.name):
                        runs.append(
                            await one_variant(lab, api, variant, args, manager, sim.process.pid)
                        )
            simulator_peak = rss_mib(sim.process.pid, "VmHWM")
        agent_busy = await agent_at_work(lab, api, agent)
        manager_peak = rss_mib(manager, "VmHWM")
    return Figures(
        runs, joined_s, manager_idle, agent_idle, agent_busy, simulator_idle, simulator_peak,
        manager_peak,
    )  # fmt: skip


# --- the report ------------------------------------------------------------------------------

TABLE_HEAD = (
    "| date (UTC) | nodes | tasks | variant | to all RUNNING s | tasks/s | manager MiB at "
    "all RUNNING | manager MiB idle | agent MiB idle / with 20 tasks |\n"
    "|---|---:|---:|---|---:|---:|---:|---:|---:|"
)


def rows(date: str, args: argparse.Namespace, figures: Figures) -> list[str]:
    return [
        f"| {date} | {args.nodes} | {args.tasks} | {run.variant} | {fmt_s(run.running_s)} | "
        f"{args.tasks / run.running_s:,.0f} | {run.manager_mib:.0f} | "
        f"{figures.manager_idle:.0f} | {figures.agent_idle:.0f} / {figures.agent_busy:.0f} |"
        for run in figures.runs
    ]


def verdicts(figures: Figures) -> list[str]:
    slowest = max((run.running_s for run in figures.runs), default=math.nan)
    at_10k = max((run.manager_mib for run in figures.runs), default=math.nan)
    agent = max(figures.agent_idle, figures.agent_busy)

    def met(mib: float, limit_mb: float) -> str:
        return "met" if mib * MB_PER_MIB <= limit_mb else "NOT met"

    peak = figures.manager_peak
    return [
        f"slowest variant {fmt_s(slowest)} s to all RUNNING: target ≤ {TARGET_RUNNING_S:.0f} s "
        f"{'met' if slowest <= TARGET_RUNNING_S else 'NOT met'}",
        f"manager at 10,000 RUNNING tasks at most {at_10k:.0f} MiB "
        f"({at_10k * MB_PER_MIB:.0f} MB): target ≤ {TARGET_MANAGER_MB:.0f} MB "
        f"{met(at_10k, TARGET_MANAGER_MB)}; its peak during the bursts (VmHWM) "
        f"{peak:.0f} MiB ({peak * MB_PER_MIB:.0f} MB)",
        f"agent at most {agent:.0f} MiB ({agent * MB_PER_MIB:.0f} MB): target "
        f"≤ {TARGET_AGENT_MB:.0f} MB {met(agent, TARGET_AGENT_MB)}",
    ]


def details(args: argparse.Namespace, figures: Figures, load: str) -> str:
    lines = [
        f"{args.nodes} simulated nodes Ready {figures.joined_s:.1f} s after the simulator "
        f"started. Resident memory, idle (every node joined, no task): manager "
        f"{figures.manager_idle:.0f} MiB, agent {figures.agent_idle:.0f} MiB, simulator "
        f"{figures.simulator_idle:.0f} MiB for {args.nodes} nodes (peak "
        f"{figures.simulator_peak:.0f} MiB). Peak of the manager over the whole run (VmHWM): "
        f"{figures.manager_peak:.0f} MiB. node2's agent with {AGENT_TASKS} real containers: "
        f"{figures.agent_busy:.0f} MiB.",
        "",
        "| variant | to all RUNNING s | manager MiB at all RUNNING | removal s |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {run.variant} | {fmt_s(run.running_s)} | {run.manager_mib:.0f} | {run.removed_s:.1f} |"
        for run in figures.runs
    ]
    lines += ["", *(f"- {verdict}" for verdict in verdicts(figures)), "", f"Load: {load}."]
    return "\n".join(lines)


def render(date: str, text: str) -> Callable[[list[str]], str]:
    def section(rows: list[str]) -> str:
        return f"""
## 10,000 tasks on 1,000 simulated nodes, and footprint (issue 5, points 2 and 4)

`benchmarks/scale.py` (one command, as root: `.venv/bin/python benchmarks/scale.py`) runs a
real manager (`swarmletd` in a lab host, its store on SQLite, encrypted) and 1,000 simulated
nodes (`swarmlet sim nodes`, one child process: real sessions over mutual TLS, heartbeats,
batched status reports; tasks RUNNING on a simulated engine after 50 ms ± 50 %, see
docs/simulation.md). For each variant — plain, a constraint met by 200 nodes, a placement
preference over 5 zones — the time from `docker service create --replicas 10000` to 10,000
RUNNING tasks as `docker service ls` shows them (polled every 200 ms), and the manager's
resident memory then. The variants run one after another on the same manager, each once
the previous one's tasks are gone, so a later row's memory includes what the earlier ones left
in its heap. The agent's figure is a real swarmletd worker on the machine's engine, idle and
with {AGENT_TASKS} containers. Targets: all RUNNING ≤ {TARGET_RUNNING_S:.0f} s, manager
≤ {TARGET_MANAGER_MB:.0f} MB at 10,000 tasks, agent ≤ {TARGET_AGENT_MB:.0f} MB. The
scheduler's own placements per second are in the section of `benchmarks/scheduler.py`.

### Results

{TABLE_HEAD}
{chr(10).join(rows)}

### Latest run ({date} UTC)

{text}
"""

    return section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (1..5000)")
    parser.add_argument("--tasks", type=int, default=10_000, help="replicas (1..50000)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant")
    parser.add_argument("--only", choices=[v.name for v in VARIANTS], help="one variant")
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    parser.add_argument(
        "--profile",
        help="py-spy the manager (and the simulator) while a service converges, into"
        " PROFILE.<variant> (and PROFILE.<variant>.simulator)",
    )
    args = parser.parse_args()
    if not (1 <= args.nodes <= 5000 and 1 <= args.tasks <= 50_000 and 1 <= args.rounds <= 10):
        parser.error("nodes must be 1..5000, tasks 1..50000 and rounds 1..10")
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    refuse_if_tests_run(parser.error)
    exit_on_sigterm()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before, others = load_average(), other_work()
    with own_lab(2) as lab:
        sim_log = SIM_LOG
        figures = asyncio.run(measure(lab, args, sim_log))
    load = f"{load_before} before, {load_average()} after; other work at the start: {others}"
    print()
    print(f"machine: {machine()}")
    for run in figures.runs:
        print(
            f"{run.variant:10} {fmt_s(run.running_s)} s to {args.tasks} RUNNING, manager "
            f"{run.manager_mib:.0f} MiB, removed in {run.removed_s:.1f} s"
        )
    print(
        f"idle: manager {figures.manager_idle:.0f} MiB, agent {figures.agent_idle:.0f} MiB, "
        f"simulator {figures.simulator_idle:.0f} MiB (peak {figures.simulator_peak:.0f} MiB)"
    )
    for verdict in verdicts(figures):
        print(verdict)
    if not args.no_write:
        text = f"Machine: {machine()}.\n\n" + details(args, figures, load)
        write_section(SCRIPT, render(date, text), rows(date, args, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
