"""A host stops: how long until swarmlet shows it Down, and runs its tasks elsewhere.

    .venv/bin/python benchmarks/failure.py [--rounds 5] [--replicas 6] [--how kill|unplug]
                                           [--no-write]

As root, with no test or CI run going on (it refuses to start while one is). On a lab of its
own (``swlb``: 3 hosts, shared engine; never the default lab nor the tests' ``swlt``), with
the swarm's default settings (a 5 s heartbeat period), each round:

- ``docker service create --replicas 6 --stop-grace-period 1s`` of
  ``swarmlet-test/busybox:latest sleep 1d``; wait until the 6 tasks run, some on node3, then
  2 to 7 s more (a crash comes at any point of the 5 s heartbeat cycle);
- node3 stops: the lab's ``stop("node3")`` SIGKILLs its swarmletd, as in a crash (its
  containers keep running: they are the shared engine's); or, with ``--how unplug``, node3's
  link to the lab's bridge goes down (nothing is closed: a host gone from the network);
- from just before the kill, every 100 ms, ``GET /nodes`` and ``GET /tasks`` (what
  ``docker node ls`` and ``docker service ps`` show) on node1, until node3 is ``down`` and
  the service's 6 replicas run on the other hosts (6 tasks desired running, running, on
  node1 or node2);
- the service is removed, node3's swarmletd started again, and the script waits until node3
  is ready and none of the service's containers is left.

The medians, maxima and every round are printed and written into ``docs/benchmarks.md`` (this
script's section replaced, earlier result rows kept, other sections untouched). The lab is torn
down at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ENGINE,
    IMAGE,
    Api,
    docker,
    exit_on_sigterm,
    filters,
    fmt_s,
    load_average,
    log,
    machine,
    median,
    other_work,
    own_lab,
    refuse_if_tests_run,
    write_section,
)
from swarmlet.lab.lab import Lab

SCRIPT = "failure.py"
SERVICE = "bench"
VICTIM = "node3"
POLL_S = 0.1
WATCH_S = 120.0
READY_S = 120.0
SETTLE_S = 3.0
# Before the kill, a random wait of up to a heartbeat period more: a crash comes at any point
# of the heartbeat cycle, not just after the tasks' status reports (which count as contact).
PHASE_S = (2.0, 7.0)
TARGET_DOWN_S = 15.0
TARGET_MOVED_S = 20.0


@dataclass
class Round:
    round_no: int
    on_victim: int  # replicas node3 ran when it stopped
    waited_s: float  # from all replicas running to the kill
    down_s: float  # from the kill to node3 Down; NaN if not within WATCH_S
    moved_s: float  # to every replica running on the other hosts; NaN if not within WATCH_S


async def wait_for(what: str, check: Callable[[], Any], seconds: float = READY_S) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:.0f} s")
        await asyncio.sleep(0.25)


async def node_ids(api: Api) -> dict[str, str]:
    """hostname → node ID."""
    return {n["Description"]["Hostname"]: n["ID"] for n in await api.get("/nodes")}


async def running_tasks(api: Api) -> list[dict[str, Any]]:
    query = filters(service=[SERVICE], desired_state=["running"])
    tasks = await api.get("/tasks", query) or []
    return [t for t in tasks if t.get("Status", {}).get("State") == "running"]


async def one_round(lab: Lab, api: Api, engine: Api, args: argparse.Namespace, no: int) -> Round:
    replicas = args.replicas
    service_id = docker(
        lab.docker_host, "service", "create", "--detach", "--quiet", "--no-resolve-image",
        "--name", SERVICE, "--replicas", str(replicas), "--stop-grace-period", "1s",
        IMAGE, "sleep", "1d",
    ).strip()  # fmt: skip
    ids = await node_ids(api)
    victim = ids[VICTIM]

    async def deployed() -> list[dict[str, Any]] | None:
        tasks = await running_tasks(api)
        return tasks if len(tasks) >= replicas else None

    tasks = await wait_for(f"{replicas} replicas running", deployed)
    on_victim = sum(1 for t in tasks if t.get("NodeID") == victim)
    if on_victim == 0:
        log(f"round {no + 1}: no replica on {VICTIM}; its tasks: none to move")

    # Stratified: the rounds' waits spread evenly over the cycle, each at a random point of
    # its own share of it.
    low, high = PHASE_S
    waited_s = low + (high - low) * (no + args.rng.random()) / args.rounds
    await asyncio.sleep(waited_s)
    t0 = time.monotonic()
    if args.how == "kill":
        lab.stop(VICTIM)  # SIGKILL: the kernel closes its connections
    else:
        unplug(lab, VICTIM, up=False)  # gone from the network: nothing is closed
    down_s = moved_s = math.nan
    tick = 0
    while math.isnan(down_s) or math.isnan(moved_s):
        nodes = await api.get("/nodes")
        tasks = await running_tasks(api)
        now = time.monotonic() - t0
        state = next((n["Status"]["State"] for n in nodes if n["ID"] == victim), "?")
        if math.isnan(down_s) and state == "down":
            down_s = now
        elsewhere = [t for t in tasks if t.get("NodeID") != victim]
        if math.isnan(moved_s) and len(elsewhere) >= replicas:
            moved_s = now
        if now > WATCH_S:
            break
        tick = max(tick + 1, math.ceil(now / POLL_S))
        await asyncio.sleep(max(0.0, t0 + tick * POLL_S - time.monotonic()))
    log(
        f"round {no + 1}/{args.rounds}: {VICTIM} (ran {on_victim} of {replicas}) down after "
        f"{fmt_s(down_s)} s, all {replicas} running elsewhere after {fmt_s(moved_s)} s"
    )

    # Back to where a round starts: no service, node3 up and ready, no container left.
    docker(lab.docker_host, "service", "rm", SERVICE)
    if args.how == "kill":
        await asyncio.to_thread(lab.start, VICTIM)
    else:
        unplug(lab, VICTIM, up=True)

    async def victim_ready() -> bool:
        nodes = await api.get("/nodes")
        return any(n["ID"] == victim and n["Status"]["State"] == "ready" for n in nodes)

    async def containers_gone() -> bool:
        query = {"all": "1", **filters(label=[f"com.docker.swarm.service.id={service_id}"])}
        return not await engine.get("/containers/json", query)

    await wait_for(f"{VICTIM} ready again", victim_ready)
    await wait_for(f"the containers of {SERVICE} gone", containers_gone)
    await asyncio.sleep(SETTLE_S)
    return Round(no, on_victim, waited_s, down_s, moved_s)


def unplug(lab: Lab, node: str, *, up: bool) -> None:
    """Take the host's link to the lab's bridge down (or up again): the host and everything on
    it keep running, but not a packet reaches it, and no connection is closed."""
    veth = lab.host(node).veth
    subprocess.run(["ip", "link", "set", veth, "up" if up else "down"], check=True, timeout=30)


async def measure(lab: Lab, args: argparse.Namespace) -> list[Round]:
    async with Api(lab.docker_host) as api, Api(ENGINE) as engine:
        return [await one_round(lab, api, engine, args, no) for no in range(args.rounds)]


# --- reporting -------------------------------------------------------------------------------


def figures(rounds: list[Round]) -> dict[str, float]:
    down = [r.down_s for r in rounds if not math.isnan(r.down_s)]
    moved = [r.moved_s for r in rounds if not math.isnan(r.moved_s)]
    missed = len(rounds) - min(len(down), len(moved))
    return {
        "down": median(down),
        "down_max": max(down, default=math.nan) if not missed else math.inf,
        "moved": median(moved),
        "moved_max": max(moved, default=math.nan) if not missed else math.inf,
    }


def met(f: dict[str, float], key: str, limit: float) -> str:
    """Whether the median, and every round, is within the limit: "yes / **no**"."""
    return " / ".join("yes" if f[k] <= limit else "**no**" for k in (key, f"{key}_max"))


def said(f: dict[str, float], key: str, limit: float) -> str:
    within = ("met" if f[k] <= limit else "NOT met" for k in (key, f"{key}_max"))
    return "median {}, every round {}".format(*within)


def method_text(args: argparse.Namespace) -> str:
    how = (
        "SIGKILL node3's swarmletd"
        if args.how == "kill"
        else "unplug node3 (its link down: no connection closed)"
    )
    return (
        f"3 hosts, {args.replicas} replicas, {how}, poll /nodes and /tasks every 100 ms, "
        f"{args.rounds} rounds, each 2-7 s after all run (spread evenly over the rounds); "
        "default heartbeat (5 s)"
    )


TABLE_HEAD = (
    "| date (UTC) | machine | method | Down: median / max (s) | ≤ 15 s: median / all? "
    "| running elsewhere: median / max (s) | ≤ 20 s: median / all? |\n"
    "|---|---|---|---:|---|---:|---|"
)


def row(date: str, args: argparse.Namespace, f: dict[str, float]) -> str:
    return (
        f"| {date} | {machine()} | {method_text(args)} | **{fmt_s(f['down'])}** / "
        f"{fmt_s(f['down_max'])} | {met(f, 'down', TARGET_DOWN_S)} | "
        f"**{fmt_s(f['moved'])}** / {fmt_s(f['moved_max'])} | "
        f"{met(f, 'moved', TARGET_MOVED_S)} |"
    )


def details(rounds: list[Round], replicas: int, load: str) -> str:
    lines = [
        f"Load average: {load}.",
        "",
        f"| round | replicas on node3 (of {replicas}) | waited before the kill (s) "
        "| node3 Down (s) | all running elsewhere (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.round_no + 1} | {r.on_victim} | {r.waited_s:.2f} | {fmt_s(r.down_s)} | "
        f"{fmt_s(r.moved_s)} |"
        for r in rounds
    ]
    return "\n".join(lines)


def render(date: str, text: str) -> Callable[[list[str]], str]:
    def section(result_rows: list[str]) -> str:
        return f"""
## A stopped host: Down, and its tasks elsewhere (issue 5, point 2)

`benchmarks/failure.py` (one command, as root, with no test run going on:
`.venv/bin/python benchmarks/failure.py`) builds a lab of its own (`swlb`: 3 hosts, shared
engine) with the swarm's default settings (heartbeat period 5 s; a node is Down after 3
periods without a heartbeat, as in Swarm). Each round it creates a service of 6 replicas
(`--stop-grace-period 1s`, `{IMAGE}` running `sleep 1d`), waits until they run (the
scheduler spreads them, 2 per host), then SIGKILLs node3's swarmletd — the lab's
`stop("node3")`, as in a crash; node3's containers keep running, they are the shared
engine's. From just before the kill, every 100 ms, it asks node1 `GET /nodes` and
`GET /tasks` (what `docker node ls` and `docker service ps` show) until node3 is `down` and
the 6 replicas run on node1 and node2 (6 tasks desired running, running, none on node3).
Then it removes the service, starts node3's swarmletd again and waits until node3 is ready
and none of the service's containers is left. Targets: Down within {TARGET_DOWN_S:.0f} s and
the tasks running elsewhere within {TARGET_MOVED_S:.0f} s of the kill; the table says whether
the median met them, and whether every round did.

With `--how unplug` the host is not killed but cut off: its link to the lab's bridge goes down
(its swarmletd and containers keep running, no connection is closed), and comes back up after
the round.

When a node is Down depends on how it goes. A daemon that crashes has its connections closed
by the kernel at once: the manager gives it one heartbeat period (5 s) to open a new session,
then marks it Down. A host that vanishes without a word is Down 3 heartbeat periods (15 s)
after its last word (a heartbeat, every 5 s, or a task status report), checked when that grace
runs out — so 10 to 15 s after it vanished, depending on where in the heartbeat cycle that
falls; Swarm's rule for both (3 periods from the last heartbeat, with some jitter). Going right
after the replicas report running would always be the worst case, so each round waits a
random {PHASE_S[0]:.0f} to {PHASE_S[1]:.0f} s (seeded: `--seed`) between the replicas running and
the kill or unplug, the rounds' waits spread evenly over that range (round *i* of *n* at a
random point of its *i*-th *n*th).

### Results

{TABLE_HEAD}
{chr(10).join(result_rows)}

### Latest run ({date} UTC)

{text}
"""

    return section


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (1..20)")
    parser.add_argument("--replicas", type=int, default=6, help="replicas (3..30)")
    parser.add_argument("--seed", type=int, default=5, help="of the waits before the kills")
    parser.add_argument(
        "--how",
        choices=["kill", "unplug"],
        default="kill",
        help="SIGKILL node3's swarmletd, or take its network link down",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    args = parser.parse_args()
    args.rng = random.Random(args.seed)
    if not (1 <= args.rounds <= 20 and 3 <= args.replicas <= 30):
        parser.error("rounds must be 1..20 and replicas 3..30")
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    refuse_if_tests_run(parser.error)
    exit_on_sigterm()

    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before, others_before = load_average(), other_work()
    with own_lab(nodes=3) as lab:
        rounds = asyncio.run(measure(lab, args))
    load = (
        f"{load_before} before, {load_average()} after; other work on the machine at the "
        f"start: {others_before}; at the end: {other_work()}"
    )
    f = figures(rounds)
    print()
    print(f"machine: {machine()}")
    print(f"method:  {method_text(args)}")
    print(
        f"node3 Down: median {fmt_s(f['down'])} s, max {fmt_s(f['down_max'])} s "
        f"(target ≤ {TARGET_DOWN_S:.0f} s: {said(f, 'down', TARGET_DOWN_S)})"
    )
    print(
        f"all replicas running elsewhere: median {fmt_s(f['moved'])} s, max "
        f"{fmt_s(f['moved_max'])} s (target ≤ {TARGET_MOVED_S:.0f} s: "
        f"{said(f, 'moved', TARGET_MOVED_S)})"
    )
    print(
        "rounds (down s / elsewhere s): "
        + ", ".join(f"{fmt_s(r.down_s)}/{fmt_s(r.moved_s)}" for r in rounds)
    )
    if not args.no_write:
        write_section(
            SCRIPT, render(date, details(rounds, args.replicas, load)), [row(date, args, f)]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
