"""Placements per second of the scheduler: 10,000 pending tasks over 1,000 Ready/Active nodes.

    .venv/bin/python benchmarks/scheduler.py [--runs 5] [--nodes 1000] [--tasks 10000]
                                             [--only NAME] [--profile NAME]

No lab, no agents: the scheduler alone, on plain objects, in this process. The nodes are
``Node`` objects, Ready and Active, 4 CPUs and 8 GiB each, labelled ``group=a`` (every other
node) or ``group=b`` and ``zone=z0``…``z9`` (round robin). The pending tasks come in two
workloads — 10 services of 1,000 replicas, and one service of 10,000 — each in three variants:

- **plain**: no placement constraints;
- **constraint**: ``node.labels.group==a``, met by half the nodes;
- **preference**: ``spread=node.labels.zone`` over the 10 zones.

Each variant is measured two ways, each the best (shortest wall clock, ``time.perf_counter``)
of ``--runs`` runs, after a warm-up run, with a garbage collection before each run:

- **schedule()**: the pure decision, ``placement.schedule(pending, nodes, placed=[])``, timed
  alone; the tasks are already PENDING objects.
- **controller**: the control loop, ``Scheduler(store, clock).run()``, on the in-memory
  ``Store`` with the system clock, started on a store that already holds the nodes. The
  PENDING tasks are committed (one commit per service, as the allocator writes them); the clock
  starts after those commits, before the scheduler has seen them, and stops when a watch of the
  store has seen every task ASSIGNED. It covers all the scheduler does: handling the events,
  its pass (reading the store, deciding, planning the updates) and the store's commit of its
  10,000 updates; not the orchestrator or the allocator.

A last table gives schedule()'s time per task for the plain single-service workload over 250,
1,000 and 4,000 nodes: the work per task should not grow with the number of nodes.

Every run is checked: every task placed on a node that passes its constraints, and each
service's tasks spread evenly over the nodes it may use (most and fewest per node differ by at
most one; with the preference, per zone too). Figures go to stdout and, for a full run (no
``--only``, no ``--no-write``), into this script's section of ``docs/benchmarks.md`` (earlier
result rows kept, other sections untouched).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import gc
import pstats
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import log, machine, write_section  # noqa: E402
from swarmlet.clock import SystemClock  # noqa: E402
from swarmlet.manager.scheduler import Scheduler, schedule  # noqa: E402
from swarmlet.manager.store import Op, Store  # noqa: E402
from swarmlet.models import (  # noqa: E402
    Node,
    NodeAvailability,
    NodeDescription,
    NodeSpec,
    NodeState,
    NodeStatus,
    Placement,
    Resources,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)
from swarmlet.models.service import PlacementPreference  # noqa: E402

CPU = 1_000_000_000
GIB = 1 << 30
ZONES = 10
TARGET = 5_000  # placements/s (issue 5)
SCALING_NODES = (250, 1000, 4000)
SCRIPT = "scheduler.py"
SEED = 5  # the IDs, hence the scheduler's seeded choices: every run places the same way
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def swarm_id(rng: random.Random) -> str:
    """An ID shaped like Swarm's (25 characters of base 36), from a seeded generator."""
    number = rng.getrandbits(128)
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(25, "0")


# --- the cluster and the workloads -----------------------------------------------------------


def make_nodes(count: int, rng: random.Random) -> list[Node]:
    return [
        Node(
            id=swarm_id(rng),
            spec=NodeSpec(
                labels={"group": "ab"[i % 2], "zone": f"z{i % ZONES}"},
                availability=NodeAvailability.ACTIVE,
            ),
            description=NodeDescription(
                hostname=f"sim{i:04d}", resources=Resources(nano_cpus=4 * CPU, memory_bytes=8 * GIB)
            ),
            status=NodeStatus(state=NodeState.READY, addr=f"10.{i >> 8}.{i & 255}.1"),
        )
        for i in range(count)
    ]


@dataclass(frozen=True)
class Variant:
    name: str
    services: int
    placement: Placement | None

    def eligible(self, node: Node) -> bool:
        if self.placement is not None and self.placement.constraints:
            return node.spec.labels["group"] == "a"
        return True


VARIANTS_BY_PLACEMENT: dict[str, Placement | None] = {
    "plain": None,
    "constraint": Placement(constraints=["node.labels.group==a"]),
    "preference": Placement(
        preferences=[PlacementPreference(spread={"SpreadDescriptor": "node.labels.zone"})]
    ),
}


def variants(tasks: int) -> list[Variant]:
    shapes = ((10, f"10 services x {tasks // 10:,}"), (1, f"1 service x {tasks:,}"))
    return [
        Variant(f"{shape}, {kind}", services, placement)
        for services, shape in shapes
        for kind, placement in VARIANTS_BY_PLACEMENT.items()
    ]


def make_tasks(variant: Variant, total: int, rng: random.Random) -> list[Task]:
    pending: list[Task] = []
    per_service = total // variant.services
    for _ in range(variant.services):
        service_id = swarm_id(rng)
        # One spec object per service, as the orchestrator writes its tasks.
        spec = TaskSpec(placement=variant.placement)
        version = Version(index=1)
        pending.extend(
            Task(
                id=swarm_id(rng),
                service_id=service_id,
                service_name=f"svc-{service_id[:6]}",
                slot=slot,
                spec=spec,
                spec_version=version,
                status=TaskStatus(state=TaskState.PENDING, message="pending task scheduling"),
                desired_state=TaskState.RUNNING,
            )
            for slot in range(1, per_service + 1)
        )
    return pending


def check(variant: Variant, nodes: list[Node], pending: list[Task], where: dict[str, str]) -> None:
    """Every task placed, on a node it may use, each service spread evenly (and per zone)."""
    by_id = {node.id: node for node in nodes}
    assert len(where) == len(pending), f"{len(pending) - len(where)} tasks not placed"
    per_service: dict[str, Counter[str]] = {}
    for task in pending:
        node = by_id[where[task.id]]
        assert variant.eligible(node), f"task {task.id} on a node that does not qualify"
        per_service.setdefault(task.service_id, Counter())[node.id] += 1
    usable = [node for node in nodes if variant.eligible(node)]
    for counts in per_service.values():
        per_node = [counts.get(node.id, 0) for node in usable]
        assert max(per_node) - min(per_node) <= 1, (
            f"uneven spread: {min(per_node)}..{max(per_node)}"
        )
        if variant.placement is not None and variant.placement.preferences:
            zones = Counter[str]()
            for node in usable:
                zones[node.spec.labels["zone"]] += counts.get(node.id, 0)
            assert max(zones.values()) - min(zones.values()) <= 1, f"uneven zones: {zones}"


# --- measuring -------------------------------------------------------------------------------


def run_schedule(variant: Variant, nodes: list[Node], pending: list[Task]) -> float:
    gc.collect()
    start = time.perf_counter()
    decisions = schedule(pending, nodes, [])
    elapsed = time.perf_counter() - start
    where = {d.task_id: d.node_id for d in decisions if d.node_id is not None}
    check(variant, nodes, pending, where)
    return elapsed


async def _controller(nodes: list[Node], pending: list[Task]) -> tuple[float, dict[str, str]]:
    clock = SystemClock()
    store = Store(clock=clock)
    await store.commit([Op.create(node) for node in nodes])
    loop = asyncio.create_task(Scheduler(store, clock).run(), name="scheduler")
    await asyncio.sleep(0)  # the scheduler takes its snapshot: nothing to place yet
    watch = store.watch()
    by_service: dict[str, list[Task]] = {}
    for task in pending:
        by_service.setdefault(task.service_id, []).append(task)
    where: dict[str, str] = {}
    for tasks in by_service.values():
        await store.commit([Op.create(task) for task in tasks])
    # Nothing has run yet (the in-memory store's commits do not yield to the event loop): the
    # scheduler sees the commits when this coroutine next awaits.
    gc.collect()
    start = time.perf_counter()
    async for batch in watch.batches():
        for event in batch:
            obj = event.obj
            if isinstance(obj, Task) and obj.state == TaskState.ASSIGNED and obj.node_id:
                where[obj.id] = obj.node_id
        if len(where) == len(pending):
            break
    elapsed = time.perf_counter() - start
    watch.close()
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    store.close()
    return elapsed, where


def run_controller(variant: Variant, nodes: list[Node], pending: list[Task]) -> float:
    elapsed, where = asyncio.run(_controller(nodes, pending))
    check(variant, nodes, pending, where)
    return elapsed


def best_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    measure()  # warm-up: caches, lazily built validators, the allocator's free lists
    times = [measure() for _ in range(runs)]
    return min(times), times


# --- reporting -------------------------------------------------------------------------------


def profile(variant: Variant, nodes: list[Node], tasks: int, rng: random.Random) -> None:
    pending = make_tasks(variant, tasks, rng)
    schedule(pending, nodes, [])
    profiler = cProfile.Profile()
    profiler.runcall(schedule, pending, nodes, [])
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def measure(
    chosen: list[Variant], nodes: list[Node], args: argparse.Namespace, rng: random.Random
) -> list[tuple[str, float, float]]:
    results: list[tuple[str, float, float]] = []
    for variant in chosen:
        pending = make_tasks(variant, args.tasks, rng)
        pure, pure_runs = best_of(args.runs, partial(run_schedule, variant, nodes, pending))
        loop, loop_runs = best_of(args.runs, partial(run_controller, variant, nodes, pending))
        results.append((variant.name, pure, loop))
        log(
            f"{variant.name}: schedule() {pure * 1000:.0f} ms "
            f"(runs {', '.join(f'{t * 1000:.0f}' for t in pure_runs)}), "
            f"controller {loop * 1000:.0f} ms "
            f"(runs {', '.join(f'{t * 1000:.0f}' for t in loop_runs)})"
        )
    return results


def measure_scaling(args: argparse.Namespace, rng: random.Random) -> list[tuple[int, float]]:
    """schedule() alone, the same tasks over more and more nodes."""
    plain = next(v for v in variants(args.tasks) if v.services == 1 and v.placement is None)
    pending = make_tasks(plain, args.tasks, rng)
    scaling: list[tuple[int, float]] = []
    for count in SCALING_NODES:
        cluster = make_nodes(count, random.Random(SEED))
        best, _ = best_of(args.runs, partial(run_schedule, plain, cluster, pending))
        scaling.append((count, best))
        log(f"{plain.name} over {count:,} nodes: schedule() {best * 1000:.0f} ms")
    return scaling


def report(
    args: argparse.Namespace,
    results: list[tuple[str, float, float]],
    scaling: list[tuple[int, float]],
    load: str,
) -> str:
    """The figures as markdown (printed, and written into the doc)."""
    lines = [
        f"Machine: {machine(engine=False)}. Load average {load}.",
        "",
        "| variant | schedule() ms | placements/s | controller ms | placements/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, pure, loop in results:
        lines.append(
            f"| {name} | {pure * 1000:.0f} | {args.tasks / pure:,.0f} | "
            f"{loop * 1000:.0f} | {args.tasks / loop:,.0f} |"
        )
    if scaling:
        lines += [
            "",
            "| schedule(), 1 service, no constraints | ms | µs per task |",
            "|---|---:|---:|",
        ]
        for count, best in scaling:
            lines.append(
                f"| over {count:,} nodes | {best * 1000:.0f} | {best / args.tasks * 1e6:.1f} |"
            )
    if results:
        lines += ["", verdict(args, results)]
    return "\n".join(lines)


def verdict(args: argparse.Namespace, results: list[tuple[str, float, float]]) -> str:
    slowest = min(args.tasks / loop for _, _, loop in results)
    met = "met" if slowest >= TARGET else "NOT met"
    return f"Slowest controller: {slowest:,.0f} placements/s: target ≥ {TARGET:,} {met}."


TABLE_HEAD = (
    "| date (UTC) | nodes | tasks | slowest `schedule()` placements/s | slowest controller "
    "placements/s |\n|---|---:|---:|---:|---:|"
)


def row(date: str, args: argparse.Namespace, results: list[tuple[str, float, float]]) -> str:
    pure = min(args.tasks / p for _, p, _ in results)
    loop = min(args.tasks / c for _, _, c in results)
    return f"| {date} | {args.nodes:,} | {args.tasks:,} | {pure:,.0f} | {loop:,.0f} |"


def render(args: argparse.Namespace, date: str, text: str) -> Callable[[list[str]], str]:
    def section(rows: list[str]) -> str:
        return f"""
## Scheduler: 10,000 tasks over 1,000 nodes (issue 5, point 2)

`benchmarks/scheduler.py` (one command: `.venv/bin/python benchmarks/scheduler.py`; no lab, no
root) runs the real scheduler in one process on {args.nodes:,} `Node` objects, Ready and
Active, 4 CPUs and 8 GiB each, labelled `group=a|b` (alternating) and `zone=z0…z9` (round
robin), with {args.tasks:,} PENDING tasks in two workloads (10 services; 1 service) and three
variants each: **plain** (no constraints), **constraint** (`node.labels.group==a`, half the
nodes), **preference** (`--placement-pref spread=node.labels.zone`, 10 zones). Two figures
per variant, each the best of {args.runs} runs (wall clock, `time.perf_counter`) after a
warm-up, `gc.collect()` before each run:

- **`schedule()`**: the pure decision alone, `schedule(pending, nodes, placed=[])`;
- **controller**: `Scheduler(store, SystemClock()).run()` on the in-memory `Store`: the PENDING
  tasks are committed (one commit per service), then the clock runs from before the scheduler
  has seen them until a watch of the store has seen all of them ASSIGNED — the scheduler's
  event handling, its pass (reading the store, deciding, planning the updates) and the store's
  commit of its updates.

Each run is checked: every task placed on a node it may use; per service, most and fewest
tasks per usable node differ by at most one (with the preference, per zone too). Target:
≥ {TARGET:,} placements/s. The same tasks to RUNNING on 1,000 simulated nodes, end to end,
are in the section of `benchmarks/scale.py`.

### Results

{TABLE_HEAD}
{chr(10).join(rows)}

### Latest run ({date} UTC)

{text}
"""

    return section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per figure (1..20)")
    parser.add_argument("--nodes", type=int, default=1000, help="Ready/Active nodes")
    parser.add_argument("--tasks", type=int, default=10_000, help="pending tasks (÷ 10)")
    parser.add_argument("--only", help="run only the variants whose name contains this")
    parser.add_argument("--profile", help="cProfile one schedule() of the first matching variant")
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    args = parser.parse_args()
    if not (1 <= args.runs <= 20 and args.nodes >= ZONES * 2 and args.tasks % 10 == 0):
        parser.error("runs must be 1..20, nodes ≥ 20, tasks a multiple of 10")

    rng = random.Random(SEED)
    nodes = make_nodes(args.nodes, rng)
    chosen = [v for v in variants(args.tasks) if args.only is None or args.only in v.name]
    if args.profile:
        profile(next(v for v in chosen if args.profile in v.name), nodes, args.tasks, rng)
        return 0
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = measure(chosen, nodes, args, rng)
    scaling = measure_scaling(args, rng) if args.only is None else []
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = report(args, results, scaling, f"before {load_before}, after {load_after}")
    print()
    print(text)
    if not args.no_write and args.only is None:
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
        write_section(SCRIPT, render(args, date, text), [row(date, args, results)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
