"""Time to converge: ``docker service create --replicas N`` until N/N run, swarmlet against
Docker Swarm against N parallel ``docker run -d``, all on the machine's one engine.

    .venv/bin/python benchmarks/convergence.py [--sizes 10,50] [--rounds 5]
                                               [--methods swarmlet,swarm,run] [--no-write]

As root, with no test or CI run going on (it refuses to start while one is), and only when the
machine's engine is in no swarm (it refuses otherwise: it never touches a swarm it did not
make). In one run:

- **swarmlet**: a lab of its own (``swlb``, 3 hosts, shared engine; never the default lab nor
  the tests' ``swlt``), the stock CLI against node1;
- **swarm**: Docker Swarm on the machine's engine: ``docker swarm init`` (advertising and
  listening on 127.0.0.1 only) at the start, ``docker swarm leave --force`` at the end,
  whatever happens (and ``docker_gwbridge`` removed again if the init made it);
- **run**: N ``docker run -d`` started at once against the engine: the engine's own limit;
- **run-net** (with ``--overlay``, by default): the same N ``docker run -d`` on a user-defined
  bridge network made for the run: what the engine itself costs a container on any network
  other than its default one (its embedded DNS server among it), which a task on an overlay
  pays whoever plumbs it through the engine.

For each N of ``--sizes`` and each of ``--rounds`` rounds, each method once, their order
rotating from round to round. A measurement starts just before the CLI is started
(``docker service create --detach --quiet --no-resolve-image --replicas N --stop-grace-period 1s
swarmlet-test/busybox:latest sleep 1d``, or the N ``docker run -d``) and ends at the first
poll, every 100 ms from that start, that shows N running: for both orchestrators
``GET /services?status=true`` (``ServiceStatus.RunningTasks``, what ``docker service ls``
shows), for ``docker run`` ``GET /containers/json`` filtered on the run's label and
``status=running``. Between measurements everything is removed (``docker service rm``,
``docker rm -f``) and the script waits until the engine has none of its containers left and
the orchestrator none of its tasks.

The median and every round are printed and written into ``docs/benchmarks.md`` (this script's
section replaced, earlier result rows kept, other sections untouched).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ENGINE,
    IMAGE,
    Api,
    cpu_s,
    docker,
    docker_cli,
    docker_env,
    docker_swarm,
    exit_on_sigterm,
    filters,
    fmt_s,
    load_average,
    log,
    machine,
    machine_busy_s,
    median,
    other_work,
    own_lab,
    refuse_if_tests_run,
    write_section,
)
from benchmarks.scale import daemon_pid
from swarmlet.lab.lab import Lab

SCRIPT = "convergence.py"
METHODS = ("swarmlet", "swarm", "run", "run-net")
# The methods of a run without --overlay, and with it.
PLAIN_METHODS = ("swarmlet", "swarm", "run")
SERVICE = "bench"
RUN_LABEL = "swlb.bench=run"
SERVICE_LABEL = "com.docker.swarm.service.id"
POLL_S = 0.1
CONVERGE_S = 300.0
CLEAN_S = 120.0
SETTLE_S = 2.0
TARGET_VS_SWARM = 0.75  # swarmlet's 50-replica time at most this times Docker Swarm's
TARGET_VS_RUN = 1.2  # and at most this times 50 parallel `docker run -d`
TARGET_N = 50
# With --overlay (issue 11, point 6): every task on one overlay network, and tighter targets.
NETWORK = "bench-net"
# run-net's: a user-defined bridge on the engine, named for the run: Docker Engine 20.10 may
# miscount its endpoints when 50 containers on it are removed at once, and then refuses to
# remove it ("has active endpoints") until it restarts.
BRIDGE = f"bench-bridge-{os.getpid()}"
# The methods that are N `docker run -d`, and the network each runs them on (None: the
# engine's default one).
RUN_NETWORKS: dict[str, str | None] = {"run": None, "run-net": BRIDGE}
OVERLAY_TARGET_VS_SWARM = 0.6
OVERLAY_TARGET_VS_RUN = 1.1


@dataclass
class Round:
    method: str
    n: int
    round_no: int
    seconds: float  # to N running; NaN if not within CONVERGE_S
    returned_s: float  # when the create call (the last docker run) had returned
    polls: int
    reached: int  # running at the last poll
    # CPU seconds from the CLI's start to the poll that showed N running: the whole machine's,
    # and the engine's, containerd's and the lab's swarmletd's (the three hosts').
    cpu: dict[str, float] = field(default_factory=dict)


# --- measuring -------------------------------------------------------------------------------


async def poll_until(
    count: Callable[[], Awaitable[int]], n: int, t0: float
) -> tuple[float, int, int]:
    """Poll ``count`` every POLL_S from ``t0`` until it is ``n``: (seconds from t0 to the
    answer that showed it, or NaN past CONVERGE_S; polls made; the last count)."""
    polls = tick = got = 0
    while True:
        got = await count()
        polls += 1
        now = time.monotonic()
        if got >= n:
            return now - t0, polls, got
        if now - t0 > CONVERGE_S:
            return math.nan, polls, got
        tick = max(tick + 1, math.ceil((now - t0) / POLL_S))  # ticks missed are skipped
        await asyncio.sleep(max(0.0, t0 + tick * POLL_S - time.monotonic()))


async def cli(docker_host: str, *args: str) -> tuple[float, str]:
    """The docker CLI, started now: (when it returned, monotonic; its stdout)."""
    process = await asyncio.create_subprocess_exec(
        docker_cli(), *args,
        env=docker_env(docker_host), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {err.decode().strip() or out.decode()}")
    return time.monotonic(), out.decode()


async def service_round(
    method: str, docker_host: str, api: Api, n: int, round_no: int, overlay: bool
) -> tuple[Round, str]:
    """One ``docker service create``, timed; returns the round and the service's ID."""
    network = ("--network", NETWORK) if overlay else ()
    args = (
        "service", "create", "--detach", "--quiet", "--no-resolve-image", "--name", SERVICE,
        "--replicas", str(n), "--stop-grace-period", "1s", *network, IMAGE, "sleep", "1d",
    )  # fmt: skip
    t0 = time.monotonic()
    creating = asyncio.create_task(cli(docker_host, *args), name="service create")

    async def running() -> int:
        if creating.done() and creating.exception() is not None:
            await creating  # raises what the CLI said
        services = await api.get("/services", {"status": "true", **filters(name=[SERVICE])})
        for service in services or []:
            if service["Spec"]["Name"] == SERVICE:
                return int((service.get("ServiceStatus") or {}).get("RunningTasks") or 0)
        return 0

    try:
        seconds, polls, reached = await poll_until(running, n, t0)
    finally:
        returned, out = await creating
    return Round(method, n, round_no, seconds, returned - t0, polls, reached), out.strip()


async def run_round(engine: Api, method: str, n: int, round_no: int) -> Round:
    """N ``docker run -d`` at once (on the method's network, ``RUN_NETWORKS``), timed until
    the engine shows N of them running."""
    t0 = time.monotonic()
    network = RUN_NETWORKS[method]
    on = ("--network", network) if network else ()
    args = ("run", "-d", "--label", RUN_LABEL, "--stop-timeout", "1", *on, IMAGE, "sleep", "1d")
    starting = [asyncio.create_task(cli(ENGINE, *args), name=f"docker run {i}") for i in range(n)]

    async def running() -> int:
        for task in starting:
            if task.done() and task.exception() is not None:
                await task
        query = filters(label=[RUN_LABEL], status=["running"])
        return len(await engine.get("/containers/json", query) or [])

    try:
        seconds, polls, reached = await poll_until(running, n, t0)
    finally:
        done = await asyncio.gather(*starting, return_exceptions=True)
    failed = [result for result in done if isinstance(result, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} docker run failed, the first: {failed[0]}")
    returned = max(result[0] for result in done if not isinstance(result, BaseException))
    return Round(method, n, round_no, seconds, returned - t0, polls, reached)


# --- cleaning up -----------------------------------------------------------------------------


async def wait_gone(what: str, left: Callable[[], Awaitable[int]]) -> None:
    deadline = time.monotonic() + CLEAN_S
    while (count := await left()) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} {what} still there after {CLEAN_S:.0f} s")
        await asyncio.sleep(0.25)


async def remove_service(docker_host: str, api: Api, engine: Api, service_id: str) -> None:
    """``docker service rm``, then wait until the engine has none of its containers and the
    orchestrator none of its tasks."""
    await cli(docker_host, "service", "rm", SERVICE)

    async def containers() -> int:
        query = {"all": "1", **filters(label=[f"{SERVICE_LABEL}={service_id}"])}
        return len(await engine.get("/containers/json", query) or [])

    async def tasks() -> int:
        listed = await api.get("/tasks") or []
        return sum(1 for task in listed if task.get("ServiceID") == service_id)

    await wait_gone(f"containers of service {service_id}", containers)
    await wait_gone(f"tasks of service {service_id}", tasks)


async def remove_run(engine: Api) -> None:
    async def containers() -> list[str]:
        query = {"all": "1", **filters(label=[RUN_LABEL])}
        return [c["Id"] for c in await engine.get("/containers/json", query) or []]

    ids = await containers()
    if ids:
        await cli(ENGINE, "rm", "-f", *ids)

    async def count() -> int:
        return len(await containers())

    await wait_gone("docker run containers", count)


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    swarmlet: str  # DOCKER_HOST of the lab's manager
    swarm: str  # the engine's
    # The processes whose CPU each round counts, by what the details call them (several pids
    # are summed).
    processes: dict[str, list[int]] = field(default_factory=dict)


# The engine's own containerd (dockerd starts it when none is given).
ENGINE_PID_FILES = {
    "dockerd": Path("/var/run/docker.pid"),
    "containerd": Path("/var/run/docker/containerd/containerd.pid"),
}


def processes_of(lab: Lab | None) -> dict[str, list[int]]:
    found = {
        name: [int(path.read_text().split()[0])]
        for name, path in ENGINE_PID_FILES.items()
        if path.exists()
    }
    if lab is not None:
        found["swarmletd"] = [daemon_pid(lab, host.hostname) for host in lab.plan.hosts]
    return found


def cpu_now(processes: dict[str, list[int]]) -> dict[str, float]:
    used = {"machine": machine_busy_s()}
    for name, pids in processes.items():
        with suppress(OSError):
            used[name] = sum(cpu_s(pid, children=True) for pid in pids)
    return used


async def measure(targets: Targets, args: argparse.Namespace) -> list[Round]:
    rounds: list[Round] = []
    async with Api(targets.swarmlet) as lab_api, Api(targets.swarm) as engine:
        apis = {"swarmlet": lab_api, "swarm": engine}
        for n in args.sizes:
            for round_no in range(args.rounds):
                shift = round_no % len(args.methods)
                for method in args.methods[shift:] + args.methods[:shift]:
                    runs = method in RUN_NETWORKS
                    cpu_before = cpu_now(targets.processes)
                    if runs:
                        result = await run_round(engine, method, n, round_no)
                    else:
                        host = getattr(targets, method)
                        result, service_id = await service_round(
                            method, host, apis[method], n, round_no, args.overlay
                        )
                    cpu_after = cpu_now(targets.processes)
                    result.cpu = {
                        name: cpu_after[name] - cpu_before[name]
                        for name in cpu_after
                        if name in cpu_before
                    }
                    if runs:
                        await remove_run(engine)
                    else:
                        await remove_service(host, apis[method], engine, service_id)
                    rounds.append(result)
                    log(
                        f"N={n:3} round {round_no + 1}/{args.rounds} {method:8} "
                        f"{fmt_s(result.seconds):>6} s to {n}/{n} running (create returned "
                        f"at {result.returned_s:.2f} s; {result.polls} polls)"
                        + ("" if result.reached >= n else f"; only {result.reached} ran")
                    )
                    await asyncio.sleep(SETTLE_S)
    return rounds


@contextmanager
def swarmlet_lab(wanted: bool) -> Iterator[Lab | None]:
    if not wanted:
        yield None
        return
    with own_lab(nodes=3) as lab:
        yield lab


# --- reporting -------------------------------------------------------------------------------


def medians(rounds: list[Round]) -> dict[tuple[str, int], float]:
    keys = {(r.method, r.n) for r in rounds}
    return {
        key: median(
            [r.seconds for r in rounds if (r.method, r.n) == key and not math.isnan(r.seconds)]
        )
        for key in keys
    }


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def verdicts(meds: dict[tuple[str, int], float]) -> tuple[float, float]:
    """swarmlet/swarm and swarmlet/run at TARGET_N."""
    swarmlet = meds.get(("swarmlet", TARGET_N), math.nan)
    return (
        ratio(swarmlet, meds.get(("swarm", TARGET_N), math.nan)),
        ratio(swarmlet, meds.get(("run", TARGET_N), math.nan)),
    )


def met(value: float, limit: float) -> str:
    if math.isnan(value):
        return "-"
    return "yes" if value <= limit else "**no**"


def method_text(args: argparse.Namespace) -> str:
    return (
        f"{args.rounds} rounds per N, methods rotating; CLI start to first 100 ms poll "
        f"showing N running; medians" + ("; the services on an overlay" if args.overlay else "")
    )


def targets(args: argparse.Namespace) -> tuple[float, float]:
    """swarmlet's 50-replica time at most this times Docker Swarm's, and `docker run`'s."""
    if args.overlay:
        return OVERLAY_TARGET_VS_SWARM, OVERLAY_TARGET_VS_RUN
    return TARGET_VS_SWARM, TARGET_VS_RUN


def table_head(vs_swarm: float, vs_run: float) -> str:
    return (
        "| date (UTC) | machine | method | N | swarmlet (s) | Docker Swarm (s) "
        f"| docker run -d (s) | swarmlet / Swarm | ≤ {vs_swarm}? | swarmlet / docker run "
        f"| ≤ {vs_run}? |\n|---|---|---|---:|---:|---:|---:|---:|---|---:|---|"
    )


TABLE_HEAD = table_head(TARGET_VS_SWARM, TARGET_VS_RUN)


def rows(date: str, args: argparse.Namespace, meds: dict[tuple[str, int], float]) -> list[str]:
    lines = []
    for n in args.sizes:
        swarmlet = meds.get(("swarmlet", n), math.nan)
        swarm = meds.get(("swarm", n), math.nan)
        run = meds.get(("run", n), math.nan)
        vs_swarm, vs_run = ratio(swarmlet, swarm), ratio(swarmlet, run)
        target = n == TARGET_N
        target_vs_swarm, target_vs_run = targets(args)
        lines.append(
            f"| {date} | {machine()} | {method_text(args)} | {n} | {fmt_s(swarmlet)} | "
            f"{fmt_s(swarm)} | {fmt_s(run)} | **{fmt_s(vs_swarm)}** | "
            f"{met(vs_swarm, target_vs_swarm) if target else 'n/a'} | **{fmt_s(vs_run)}** | "
            f"{met(vs_run, target_vs_run) if target else 'n/a'} |"
        )
    return lines


def details(rounds: list[Round], load: str, meds: dict[tuple[str, int], float]) -> str:
    lines = [f"Load average: {load}.", ""]
    on_bridge = meds.get(("run-net", TARGET_N), math.nan)
    if not math.isnan(on_bridge):
        default = meds.get(("run", TARGET_N), math.nan)
        swarmlet = meds.get(("swarmlet", TARGET_N), math.nan)
        lines += [
            f"N = {TARGET_N} `docker run -d --network {BRIDGE}` (a user-defined bridge): "
            f"median {fmt_s(on_bridge)} s, {fmt_s(ratio(on_bridge, default))}x `docker run -d` "
            f"on the default bridge; swarmlet on the overlay is "
            f"{fmt_s(ratio(swarmlet, on_bridge))}x it.",
            "",
        ]
    lines += [
        "CPU seconds from the CLI's start to the poll that showed N running: the machine's "
        "(both vCPUs), and with the commands each ran, the engine's `dockerd` and `containerd` "
        "(not the containers' shims, which are nobody's children), and the lab's three "
        "`swarmletd`s.",
        "",
        "| N | round | method (in order) | s to N running | create returned (s) | polls "
        "| CPU s: machine | dockerd | containerd | swarmletd |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        failed = "" if r.reached >= r.n else f" (only {r.reached} by {CONVERGE_S:.0f} s)"
        used = " | ".join(
            fmt_s(r.cpu.get(name, math.nan))
            for name in ("machine", "dockerd", "containerd", "swarmletd")
        )
        lines.append(
            f"| {r.n} | {r.round_no + 1} | {r.method} | {fmt_s(r.seconds)}{failed} | "
            f"{r.returned_s:.2f} | {r.polls} | {used} |"
        )
    return "\n".join(lines)


def render(date: str, text: str) -> Callable[[list[str]], str]:
    def section(result_rows: list[str]) -> str:
        return f"""
## Convergence: swarmlet, Docker Swarm and `docker run -d` (issue 5, point 1)

`benchmarks/convergence.py` (one command, as root, with no test run going on:
`.venv/bin/python benchmarks/convergence.py`) measures, in one run on the machine's one
engine, the time from `docker service create --replicas N` to N/N running for:

- **swarmlet** on a lab of its own (`swlb`: 3 hosts, shared engine), the stock CLI against
  node1;
- **Docker Swarm** on the same engine: `docker swarm init` (advertising 127.0.0.1) at the
  start, `docker swarm leave --force` at the end whatever happens; the script refuses to run
  if the engine is in a swarm already;
- **docker run**: N `docker run -d` started at once against the engine, until the engine
  shows all N running — what the engine itself can do, with no orchestrator.

Both services are `docker service create --detach --quiet --no-resolve-image --name bench
--replicas N --stop-grace-period 1s {IMAGE} sleep 1d` (`--no-resolve-image`: neither
orchestrator's time includes the CLI asking a registry, which this offline machine has
none of). A measurement starts just before the CLI is started and ends at the first poll,
every 100 ms from that start, that shows N running: `GET /services?status=true`
(`ServiceStatus.RunningTasks`, what `docker service ls` shows) for both orchestrators,
`GET /containers/json` (label and `status=running` filters) for `docker run`. For each N the
three methods take turns, their order rotating each round. Between measurements everything is
removed and the script waits until the engine shows none of the containers and the orchestrator
none of the tasks, then 2 s more. The table gives the median per method; targets at N = 50:
swarmlet ≤ {TARGET_VS_SWARM}x Docker Swarm, and ≤ {TARGET_VS_RUN}x `docker run -d`.

Caveats: swarmlet's three hosts and its CLI share the machine's CPUs with the engine
they drive, as Docker Swarm's manager does (it runs inside dockerd); the swarmlet lab is up
(idle) while Docker Swarm and `docker run` are measured, and Docker Swarm (idle) while
swarmlet is. Docker Swarm's agent tries to pull a task's image before it starts the task,
even when the engine has it (moby's executor does so for any image named by a tag); on this
machine, which reaches no registry, the attempt fails within about 10 ms (the lookup of
registry-1.docker.io finds no such host: `docker pull` of the image fails in 0.01-0.02 s), the
engine logs "pulling image failed", and the task goes on with the local image.

### Results

{TABLE_HEAD}
{chr(10).join(result_rows)}

### Latest run ({date} UTC)

{text}
"""

    return section


def render_overlay(date: str, text: str) -> Callable[[list[str]], str]:
    def section(result_rows: list[str]) -> str:
        return f"""
## Convergence on an overlay network (issue 11, point 6)

`benchmarks/convergence.py --overlay` measures as above (same rounds, polls and cleanup), with
one overlay network made in each orchestrator before the first round (`docker network create
--driver overlay {NETWORK}`) and both services created with `--network {NETWORK}`; `docker run
-d` stays on the engine's default network, the engine's own limit. A fourth method, not in the
targets, runs the same `docker run -d`s on a user-defined bridge (`docker network create
{BRIDGE}`): what the engine itself spends on a container on any network but its default one.
Each round's CPU time is recorded: the whole machine's, the engine's, and swarmlet's. Every
dockercoins task is on an overlay. Targets at N = 50: swarmlet ≤ {OVERLAY_TARGET_VS_SWARM}x
Docker Swarm, and ≤ {OVERLAY_TARGET_VS_RUN}x `docker run -d`. A task on an overlay is one
container: the host's swarmletd is its engine's network plugin ([dataplane.md](dataplane.md));
before, a second container held each task's namespace (14.6 s for 50 replicas, 1.62x `docker
run -d`).

### Results

{table_head(OVERLAY_TARGET_VS_SWARM, OVERLAY_TARGET_VS_RUN)}
{chr(10).join(result_rows)}

### Latest run ({date} UTC)

{text}
"""

    return section


@contextmanager
def overlay_networks(wanted: bool, hosts: list[str]) -> Iterator[None]:
    """The benchmark's overlay network in each orchestrator for the block."""
    if not wanted:
        yield
        return
    for host in hosts:
        docker(host, "network", "create", "--driver", "overlay", NETWORK)
    try:
        yield
    finally:
        for host in hosts:
            with suppress(RuntimeError):
                docker(host, "network", "rm", NETWORK)


@contextmanager
def engine_bridge(wanted: bool) -> Iterator[None]:
    """run-net's user-defined bridge on the engine, for the block."""
    if not wanted:
        yield
        return
    docker(ENGINE, "network", "create", "--driver", "bridge", BRIDGE)
    try:
        yield
    finally:
        try:
            docker(ENGINE, "network", "rm", BRIDGE)
        except RuntimeError as exc:
            log(f"the engine kept {BRIDGE} (removed when it restarts): {exc}")


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50", help="replica counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size (1..20)")
    parser.add_argument(
        "--methods",
        default=None,
        help=f"some of {', '.join(METHODS)} (default: the first three, and run-net with --overlay)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    parser.add_argument(
        "--overlay", action="store_true", help="every service on an overlay network (issue 11)"
    )
    args = parser.parse_args()
    try:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes: comma-separated numbers")
    default = METHODS if args.overlay else PLAIN_METHODS
    args.methods = [m for m in (args.methods or ",".join(default)).split(",") if m]
    if not all(1 <= n <= 100 for n in args.sizes) or not 1 <= args.rounds <= 20:
        parser.error("sizes must be 1..100 and rounds 1..20")
    if not args.methods or not set(args.methods) <= set(METHODS):
        parser.error(f"methods: some of {', '.join(METHODS)}")
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    refuse_if_tests_run(parser.error)
    exit_on_sigterm()

    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before, others_before = load_average(), other_work()
    with (
        swarmlet_lab("swarmlet" in args.methods) as lab,
        docker_swarm("swarm" in args.methods),
    ):
        hosts = Targets(
            swarmlet=lab.docker_host if lab else ENGINE, swarm=ENGINE, processes=processes_of(lab)
        )
        orchestrators = [getattr(hosts, m) for m in args.methods if m not in RUN_NETWORKS]
        with (
            overlay_networks(args.overlay, orchestrators),
            engine_bridge("run-net" in args.methods),
        ):
            rounds = asyncio.run(measure(hosts, args))
    load = (
        f"{load_before} before, {load_average()} after; other work on the machine at the "
        f"start: {others_before}; at the end: {other_work()}"
    )
    meds = medians(rounds)
    vs_swarm, vs_run = verdicts(meds)
    print()
    print(f"machine: {machine()}")
    print(f"method:  {method_text(args)}")
    for n in args.sizes:
        for m in args.methods:
            each = " ".join(fmt_s(r.seconds) for r in rounds if r.method == m and r.n == n)
            print(f"N={n:3} {m:8} median {fmt_s(meds.get((m, n), math.nan)):>6} s  rounds: {each}")
    target_vs_swarm, target_vs_run = targets(args)
    print(
        f"N={TARGET_N}: swarmlet/Docker Swarm = {fmt_s(vs_swarm)} (target ≤ {target_vs_swarm}), "
        f"swarmlet/docker run = {fmt_s(vs_run)} (target ≤ {target_vs_run})"
    )
    if not args.no_write:
        text = details(rounds, load, meds)
        if args.overlay:
            write_section(f"{SCRIPT} --overlay", render_overlay(date, text), rows(date, args, meds))
        else:
            write_section(SCRIPT, render(date, text), rows(date, args, meds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
