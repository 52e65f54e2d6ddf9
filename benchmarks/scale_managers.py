"""10,000 tasks on 1,000 simulated nodes with three managers on etcd (issue 14, point 7).

    .venv/bin/python benchmarks/scale_managers.py [--nodes 1000] [--tasks 10000] [--rounds 1]
                                                  [--only plain|constraint|preference]
                                                  [--no-write]

As root, with no test or CI run going on (it refuses to start while one is). The run of
``benchmarks/scale.py`` (read its docstring), on the benchmarks' lab (``swlb``) of four hosts:
node1, node2 and node3 are managers — real ``swarmletd``s, each with its etcd member, the
store on etcd (sealed) — and node4 a worker; all four are drained, so that the simulated
nodes take every task. The 1,000 simulated nodes are given node1's address only: each one's
session learns the managers from it and moves to the leader's dispatcher, as an agent does.
For each variant, ``docker service create --replicas 10000`` through node1 (a manager whether
or not it leads), the clock stopped when ``GET /services?status=true`` on node1 shows 10,000
running tasks; then the leader's ``swarmletd`` and its etcd member's resident memory, and the
CPU time each manager's ``swarmletd``, each etcd member and the simulator used over the runs.

The figures are printed and written into ``docs/benchmarks.md`` (this script's section
replaced, earlier result rows kept). The lab and the simulator are ended whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    Api,
    cpu_s,
    docker,
    exit_on_sigterm,
    fmt_s,
    load_average,
    log,
    machine,
    other_work,
    own_lab,
    refuse_if_tests_run,
    write_section,
)
from benchmarks.scale import (
    JOIN_S,
    SIM_LOG,
    VARIANTS,
    Run,
    Simulator,
    daemon_pid,
    one_variant,
    rss_mib,
    wait_for,
)
from swarmlet.lab.lab import Lab

SCRIPT = "scale_managers.py"
MANAGERS = ("node1", "node2", "node3")
HOSTS = 4
TARGET_RUNNING_S = 15.0


def etcd_pid(lab: Lab, node: str) -> int:
    """The PID of ``node``'s etcd member: the process whose data directory is the node's."""
    data_dir = f"--data-dir={lab.host(node).state_dir / 'etcd'}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if data_dir.encode() in argv:
            return int(proc.name)
    raise RuntimeError(f"{node} runs no etcd member")


async def leader_of(api: Api) -> str:
    """The hostname of the leading manager, as `docker node ls` shows it."""
    for node in await api.get("/nodes") or []:
        if (node.get("ManagerStatus") or {}).get("Leader"):
            return str(node["Description"]["Hostname"])
    raise RuntimeError("no manager leads")


@dataclass
class Figures:
    runs: list[Run]
    joined_s: float
    leader: str
    leader_idle: float
    etcd_idle: float
    leader_at_10k: float
    etcd_at_10k: float
    # CPU seconds each process used over the runs (creation to all RUNNING, and removal).
    cpu: dict[str, float]


async def measure(lab: Lab, args: argparse.Namespace) -> Figures:
    for node in (*MANAGERS, "node4"):
        docker(lab.docker_host, "node", "update", "--availability", "drain", node)
    token = docker(lab.docker_host, "swarm", "join-token", "-q", "worker").strip()
    async with Api(lab.docker_host) as api:
        leader = await leader_of(api)
        manager, member = daemon_pid(lab, leader), etcd_pid(lab, leader)
        log(f"{leader} leads; {args.nodes} simulated nodes joining through node1")
        with Simulator(lab.host("node1").listen_addr, token, args.nodes, SIM_LOG) as sim:

            async def all_ready() -> bool:
                if sim.process.poll() is not None:
                    raise RuntimeError(f"the simulator ended: see {SIM_LOG}")
                nodes = await api.get("/nodes") or []
                ready = [n for n in nodes if n["Status"]["State"] == "ready"]
                return bool(len(ready) >= args.nodes + HOSTS)

            joined_s = await wait_for("every simulated node ready", all_ready, JOIN_S)
            log(f"{args.nodes} nodes ready in {joined_s:.1f} s")
            await asyncio.sleep(5)
            leader_idle, etcd_idle = rss_mib(manager), rss_mib(member)
            processes = {"simulator": sim.process.pid}
            for node in MANAGERS:
                role = "leader" if node == leader else "follower"
                processes[f"{node}'s swarmletd ({role})"] = daemon_pid(lab, node)
                processes[f"{node}'s etcd member"] = etcd_pid(lab, node)
            cpu_before = {name: cpu_s(pid) for name, pid in processes.items()}
            runs = []
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    if args.only in (None, variant.name):
                        runs.append(
                            await one_variant(lab, api, variant, args, manager, sim.process.pid)
                        )
            cpu = {name: cpu_s(pid) - cpu_before[name] for name, pid in processes.items()}
            if await leader_of(api) != leader:
                raise RuntimeError("the leadership moved during the run: its figures are void")
    return Figures(
        runs,
        joined_s,
        leader,
        leader_idle,
        etcd_idle,
        rss_mib(manager, "VmHWM"),
        rss_mib(member, "VmHWM"),
        cpu,
    )


# --- the report ------------------------------------------------------------------------------

TABLE_HEAD = (
    "| date (UTC) | nodes | tasks | managers | variant | to all RUNNING s | tasks/s | leader's "
    "swarmletd MiB at all RUNNING | its etcd member's peak MiB |\n"
    "|---|---:|---:|---:|---|---:|---:|---:|---:|"
)


def rows(date: str, args: argparse.Namespace, figures: Figures) -> list[str]:
    return [
        f"| {date} | {args.nodes} | {args.tasks} | {len(MANAGERS)} | {run.variant} | "
        f"{fmt_s(run.running_s)} | {args.tasks / run.running_s:,.0f} | {run.manager_mib:.0f} | "
        f"{figures.etcd_at_10k:.0f} |"
        for run in figures.runs
    ]


def verdict(figures: Figures) -> str:
    slowest = max((run.running_s for run in figures.runs), default=math.nan)
    met = "met" if slowest <= TARGET_RUNNING_S else "NOT met"
    target = f"target ≤ {TARGET_RUNNING_S:.0f} s"
    return f"slowest variant {fmt_s(slowest)} s to all RUNNING: {target} {met}"


def details(args: argparse.Namespace, figures: Figures, load: str) -> str:
    lines = [
        f"{args.nodes} simulated nodes Ready {figures.joined_s:.1f} s after the simulator "
        f"started. {figures.leader} led throughout. Resident memory, idle: the leader's "
        f"swarmletd {figures.leader_idle:.0f} MiB, its etcd member {figures.etcd_idle:.0f} MiB; "
        f"peaks over the run (VmHWM): {figures.leader_at_10k:.0f} MiB and "
        f"{figures.etcd_at_10k:.0f} MiB.",
        "",
        "| variant | to all RUNNING s | leader MiB at all RUNNING | removal s |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {run.variant} | {fmt_s(run.running_s)} | {run.manager_mib:.0f} | {run.removed_s:.1f} |"
        for run in figures.runs
    ]
    lines += [
        "",
        "CPU time each process used over the runs (creations to all RUNNING, and removals), on"
        " the machine's 2 vCPUs:",
        "",
        "| process | CPU s |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in figures.cpu.items()]
    lines += ["", f"- {verdict(figures)}", "", f"Load: {load}."]
    return "\n".join(lines)


def render(date: str, text: str) -> Callable[[list[str]], str]:
    def section(rows: list[str]) -> str:
        return f"""
## 10,000 tasks on 1,000 simulated nodes with three managers on etcd (issue 14, point 7)

`benchmarks/scale_managers.py` (one command, as root) runs `benchmarks/scale.py`'s
measurement on a swarm of three managers, each a real `swarmletd` with its own etcd member
(the store on etcd, sealed; docs/store.md), and one drained worker. The 1,000 simulated nodes
are given one manager's address and find the leader's dispatcher from the managers it tells
them; services are created through node1, which may or may not lead. Target: all RUNNING
≤ {TARGET_RUNNING_S:.0f} s. The single-manager (SQLite) figures are in the section of
`benchmarks/scale.py`.

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
    args = parser.parse_args()
    args.profile = None  # scale.one_variant's option, not offered here
    if not (1 <= args.nodes <= 5000 and 1 <= args.tasks <= 50_000 and 1 <= args.rounds <= 10):
        parser.error("nodes must be 1..5000, tasks 1..50000 and rounds 1..10")
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    refuse_if_tests_run(parser.error)
    exit_on_sigterm()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before, others = load_average(), other_work()
    with own_lab(HOSTS, managers=len(MANAGERS)) as lab:
        figures = asyncio.run(measure(lab, args))
    load = f"{load_before} before, {load_average()} after; other work at the start: {others}"
    print()
    print(f"machine: {machine()}")
    for run in figures.runs:
        print(f"{run.variant:10} {fmt_s(run.running_s)} s to {args.tasks} RUNNING")
    for name, seconds in figures.cpu.items():
        print(f"CPU {name}: {seconds:.1f} s")
    print(verdict(figures))
    if not args.no_write:
        text = f"Machine: {machine()}.\n\n" + details(args, figures, load)
        write_section(SCRIPT, render(date, text), rows(date, args, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
