"""Requests/s and p50/p99 latency through the ingress routing mesh against a direct connection.

    .venv/bin/python benchmarks/mesh.py [--rounds 10] [--concurrency 8] [--requests 5000]
                                        [--duration 10] [--no-write]

On a lab of its own (``swlb``, 192.168.250.0/24; never the default lab nor the tests' ``swlt``)
of two hosts, with the stock docker CLI:

- ``docker network create --driver overlay bench``;
- a service ``bench``, 1 replica constrained to node2, on ``bench``, publishing ``8080:80``:
  busybox httpd serving a 3-byte file;
- from node1's network namespace (``nsenter --net=/run/netns/swlb-node1``), the load generator
  ``benchmarks/loadgen.py`` (asyncio, standard library; N concurrent clients, each request a
  fresh TCP connection and an HTTP/1.0 GET read to EOF) against
  - **mesh**: node1's own address, port 8080 — node1's published port, DNATed by node1's
    ``swarmlet-mesh`` table to the task's ingress address on node2 (masqueraded, over VXLAN);
  - **direct**: the task's address on the overlay network ``bench``, port 80 — node1's bridge
    of ``bench``, VXLAN to node2, no NAT;
- alternately, mesh then direct then direct then mesh (ABBA), for ``--rounds`` pairs; each run
  bounded to ``--requests`` requests and ``--duration`` seconds;
- the median over the runs of each figure, and the ratio of the medians' requests/s (and, less
  sensitive to the machine's load drifting during the runs, the median of each round's ratio).

The figures are printed and written into ``docs/benchmarks.md`` (its mesh section replaced,
earlier result rows kept, other sections untouched). The lab is torn down at the end, whatever
happens.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import LAB, log, machine  # noqa: E402
from swarmlet.lab.lab import Lab  # noqa: E402

CONFIG = LAB  # every benchmark's lab: one lab, one lock
LOADGEN = ROOT / "benchmarks" / "loadgen.py"
DOC = ROOT / "docs" / "benchmarks.md"
IMAGE = "swarmlet-test/busybox:latest"
SERVER = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"
PUBLISHED, TARGET = 8080, 80
TARGET_RATIO = 0.9
READY_S = 120
BEGIN = "<!-- benchmarks/mesh.py: begin -->"
END = "<!-- benchmarks/mesh.py: end -->"


@dataclass(frozen=True)
class Targets:
    mesh: tuple[str, int]
    direct: tuple[str, int]
    ingress_address: str  # the task's address on ingress, where the mesh sends connections
    task_id: str


# --- the lab ---------------------------------------------------------------------------------


@contextmanager
def own_lab(nodes: int) -> Iterator[Lab]:
    """Our lab, up for the block and gone after it, whatever happens (the lab's lock held)."""
    CONFIG.lock_file.parent.mkdir(parents=True, exist_ok=True)
    with CONFIG.lock_file.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(f"another process holds {CONFIG.lock_file}: is a benchmark running?")
        lab = Lab(CONFIG)
        try:
            lab.down()  # whatever a killed run of this script left
            log(f"lab {CONFIG.name}: up with {nodes} hosts on {CONFIG.subnet}.0/24")
            lab.up(nodes, "shared")
            yield lab
        finally:
            log(f"lab {CONFIG.name}: down")
            lab.down()
            left = lab.leftovers()
            if left:
                log(f"lab {CONFIG.name}: left behind: {left}")


def docker(lab: Lab, *args: str, timeout: float = 120) -> str:
    done = lab.docker(*args, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"docker {shlex.join(args)}: {done.stderr.strip() or done.stdout}")
    return done.stdout


def deploy(lab: Lab) -> Targets:
    docker(lab, "network", "create", "--driver", "overlay", "bench")
    docker(
        lab, "service", "create", "--detach", "--name", "bench", "--replicas", "1",
        "--constraint", "node.hostname==node2", "--network", "bench",
        "-p", f"{PUBLISHED}:{TARGET}", "--stop-grace-period", "1s",
        IMAGE, "sh", "-c", SERVER,
    )  # fmt: skip
    deadline = time.monotonic() + READY_S
    task: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        ids = docker(lab, "service", "ps", "-q", "--filter", "desired-state=running", "bench")
        for task_id in ids.split():
            found = json.loads(docker(lab, "inspect", "--type", "task", task_id))[0]
            if found["Status"]["State"] == "running":
                task = found
        if task is not None:
            break
        time.sleep(0.5)
    if task is None:
        raise RuntimeError(f"the task of service bench did not run within {READY_S} s")
    # Docker nests the network's name in Spec; swarmlet keeps the Engine API's flat shape.
    addresses = {
        att["Network"].get("Spec", att["Network"])["Name"]: att["Addresses"][0].split("/")[0]
        for att in task.get("NetworksAttachments") or []
        if att.get("Addresses")
    }
    if "bench" not in addresses:
        raise RuntimeError(f"the task has no address on bench: {task.get('NetworksAttachments')}")
    node1 = lab.host("node1")
    targets = Targets(
        mesh=(node1.address, PUBLISHED),
        direct=(addresses["bench"], TARGET),
        ingress_address=addresses.get("ingress", "?"),
        task_id=task["ID"],
    )
    for name, (host, port) in (("mesh", targets.mesh), ("direct", targets.direct)):
        wait_answer(lab, name, host, port, deadline)
    return targets


def wait_answer(lab: Lab, name: str, host: str, port: int, deadline: float) -> None:
    while True:
        argv = [sys.executable, str(LOADGEN), host, str(port), "--probe"]
        done = lab.exec("node1", argv, timeout=10)
        if done.returncode == 0:
            log(f"{name} {host}:{port} answers from node1")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} {host}:{port} does not answer: {done.stderr.strip()}")
        time.sleep(0.5)


# --- measuring -------------------------------------------------------------------------------


def load(lab: Lab, target: tuple[str, int], args: argparse.Namespace) -> dict[str, Any]:
    host, port = target
    argv = [
        sys.executable, str(LOADGEN), host, str(port),
        "--concurrency", str(args.concurrency), "--requests", str(args.requests),
        "--duration", str(args.duration), "--timeout", "5",
    ]  # fmt: skip
    # Bounded twice: the generator stops itself; the subprocess is killed past this.
    done = lab.exec("node1", argv, timeout=args.duration + 30)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(
    lab: Lab, targets: Targets, args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {"mesh": [], "direct": []}
    warm = argparse.Namespace(**{**vars(args), "requests": 200, "duration": 5})
    for name in runs:
        load(lab, getattr(targets, name), warm)  # warm-up: ARP, FDB, conntrack, page cache
    for round_no in range(args.rounds):
        order = ("mesh", "direct") if round_no % 2 == 0 else ("direct", "mesh")
        for name in order:
            result = load(lab, getattr(targets, name), args)
            runs[name].append(result)
            log(
                f"round {round_no + 1}/{args.rounds} {name:6} {result['ok']:5} ok "
                f"{sum(result['errors'].values()):3} errors in {result['elapsed_s']:6.2f} s: "
                f"{result['rps']:7.1f} req/s, p50 {result['p50_ms']:6.2f} ms, "
                f"p99 {result['p99_ms']:6.2f} ms, loadgen CPU {result['client_cpu_pct']:5.1f} %"
            )
    return runs


def paired_ratio(runs: dict[str, list[dict[str, Any]]]) -> float:
    """The median over the rounds of mesh/direct requests/s, each round's two runs adjacent."""
    pairs = zip(runs["mesh"], runs["direct"], strict=True)
    return statistics.median(float(mesh["rps"]) / float(direct["rps"]) for mesh, direct in pairs)


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        key: statistics.median(run[key] for run in runs)
        for key in ("rps", "p50_ms", "p99_ms", "client_cpu_pct")
    } | {
        "ok": sum(run["ok"] for run in runs),
        "errors": sum(sum(run["errors"].values()) for run in runs),
        "rps_min": min(run["rps"] for run in runs),
        "rps_max": max(run["rps"] for run in runs),
    }


# --- reporting -------------------------------------------------------------------------------


def other_labs() -> list[str]:
    """Lab namespaces on the machine that are not ours: other work sharing the CPUs."""
    argv = ["ip", "netns", "list"]
    listed = subprocess.run(argv, check=False, capture_output=True, text=True).stdout
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    return sorted(n for n in names if "-node" in n and not n.startswith(f"{CONFIG.name}-"))


def method(args: argparse.Namespace) -> str:
    return (
        f"asyncio loadgen in node1's netns, {args.concurrency} conns, fresh TCP + HTTP/1.0 GET "
        f"per req, ≤{args.requests} req/≤{args.duration:g} s per run, {args.rounds} rounds "
        f"ABBA, medians"
    )


def fmt_ms(value: float) -> str:
    return f"{value:.2f}"


def row(
    date: str,
    args: argparse.Namespace,
    mesh: dict[str, float],
    direct: dict[str, float],
    ratio: float,
    paired: float,
) -> str:
    met = "yes" if ratio >= TARGET_RATIO else "**no**"
    return (
        f"| {date} | {machine(engine=False)} | {method(args)} | {mesh['rps']:.0f} | "
        f"{direct['rps']:.0f} | "
        f"**{ratio:.2f}** (paired {paired:.2f}) | {met} | "
        f"{fmt_ms(mesh['p50_ms'])} / {fmt_ms(mesh['p99_ms'])} | "
        f"{fmt_ms(direct['p50_ms'])} / {fmt_ms(direct['p99_ms'])} |"
    )


TABLE_HEAD = (
    "| date (UTC) | machine | method | mesh req/s | direct req/s | mesh/direct | ≥ 0.9x? "
    "| mesh p50 / p99 (ms) | direct p50 / p99 (ms) |\n"
    "|---|---|---|---:|---:|---:|---|---:|---:|"
)


def section(rows: list[str], date: str, details: str) -> str:
    return f"""{BEGIN}
## Ingress routing mesh against a direct connection (issue 3, point 7)

`benchmarks/mesh.py` (one command, as root: `.venv/bin/python benchmarks/mesh.py`) builds a lab
of its own, `swlb` (two hosts, 192.168.250.0/24, shared engine), and with the stock docker CLI
creates an overlay network `bench` and a service `bench`: 1 replica constrained to node2, on
`bench`, publishing `-p {PUBLISHED}:{TARGET}`, image `{IMAGE}` running busybox `httpd` serving a
3-byte file (`ok\\n`). From node1's network namespace (`nsenter --net=/run/netns/swlb-node1`) it
runs `benchmarks/loadgen.py` — a bounded asyncio load generator, standard library only: N
concurrent clients, each request a fresh TCP connection, `GET / HTTP/1.0`, the response read to
EOF; a run stops at a request count or a time limit, whichever comes first — against two
targets:

- **mesh**: node1's own address, port {PUBLISHED}, i.e. node1's published port: node1's
  `swarmlet-mesh` nftables table DNATs the connection to the task's **ingress** address and
  masquerades it; it crosses to node2 over the ingress network's VXLAN;
- **direct**: the task's address on the overlay network **`bench`** (from
  `docker inspect --type task <id>` → `NetworksAttachments`), port {TARGET}: node1's `bench`
  bridge, VXLAN to node2, no NAT.

Both paths cross the same hosts and one VXLAN hop; the difference is the mesh's NAT (DNAT,
masquerade, conntrack) on node1. The runs alternate mesh, direct, direct, mesh, … after a short
warm-up of each; the table gives the median over the runs of each figure, and the ratio of the
median requests/s ("paired": the median of each round's mesh/direct, which a load that drifts
during the runs skews less). Target: the mesh at ≥ {TARGET_RATIO}x the direct requests/s.

Caveat: everything — load generator, both lab hosts' kernels, httpd (which forks per
connection) — shares one machine's CPUs, so the absolute figures measure this machine more than
the data plane; the ratio, taken on the same lab in alternating runs, is the figure that matters.
The "loadgen CPU" column below is the generator's own CPU time over each run's wall time: near
100 % it keeps one of the machine's cores busy by itself, and the requests/s of both paths are
capped by it and by the CPU left for the kernels and httpd, which narrows any gap between them.
Other work on the machine may run meanwhile: the load averages before and after each run are
recorded, and runs of a figure far from the others' are more likely that than the data plane.

### Results

{TABLE_HEAD}
{chr(10).join(rows)}

### Latest run ({date} UTC)

{details}
{END}
"""


def write_doc(date: str, new_row: str, details: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    rows: list[str] = []
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        old, after = rest.split(END, 1)
        rows = [line for line in old.splitlines() if line.startswith("| 20")]
        after = after.lstrip("\n")
    else:
        before, after = text.rstrip("\n") + "\n\n", ""
    rows.append(new_row)
    updated = before + section(rows, date, details) + ("\n" + after if after else "")
    DOC.write_text(updated)
    log(f"wrote {DOC.relative_to(ROOT)}")


def details_text(
    targets: Targets,
    runs: dict[str, list[dict[str, Any]]],
    sums: dict[str, dict[str, float]],
    load_before: str,
    others: list[str],
) -> str:
    lines = [
        f"- mesh target `{targets.mesh[0]}:{targets.mesh[1]}` (node1's address) → the task's "
        f"ingress address `{targets.ingress_address}:{TARGET}`; direct target "
        f"`{targets.direct[0]}:{targets.direct[1]}` (the task's address on `bench`)",
        f"- load average before the run: {load_before}"
        + (f"; other labs up meanwhile: {', '.join(others)}" if others else ""),
        f"- mesh: {sums['mesh']['ok']:.0f} requests, {sums['mesh']['errors']:.0f} errors; "
        f"req/s over the runs {sums['mesh']['rps_min']:.0f}-{sums['mesh']['rps_max']:.0f}",
        f"- direct: {sums['direct']['ok']:.0f} requests, {sums['direct']['errors']:.0f} errors; "
        f"req/s over the runs {sums['direct']['rps_min']:.0f}-{sums['direct']['rps_max']:.0f}",
        "",
        "| run | target | requests | errors | s | req/s | p50 ms | p90 ms | p99 ms | max ms "
        "| loadgen CPU % |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ordered = sorted(
        ((i, name, r) for name in runs for i, r in enumerate(runs[name])),
        key=lambda item: (item[0], 0 if (item[0] % 2 == 0) == (item[1] == "mesh") else 1),
    )
    for i, name, r in ordered:
        lines.append(
            f"| {i + 1} | {name} | {r['ok']} | {sum(r['errors'].values())} | "
            f"{r['elapsed_s']:.2f} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['max_ms']:.2f} | {r['client_cpu_pct']:.0f} |"
        )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="mesh/direct pairs (1..20)")
    parser.add_argument("--concurrency", type=int, default=8, help="clients (1..64)")
    parser.add_argument("--requests", type=int, default=5000, help="per run, at most (≤ 20000)")
    parser.add_argument("--duration", type=float, default=10.0, help="per run, at most (s, ≤ 10)")
    parser.add_argument("--no-write", action="store_true", help=f"do not update {DOC.name}")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 20 and 1 <= args.concurrency <= 64):
        parser.error("rounds must be 1..20 and concurrency 1..64")
    if not (1 <= args.requests <= 20_000 and 0 < args.duration <= 10):
        parser.error("requests must be 1..20000 and duration in (0, 10] s")
    if os.geteuid() != 0:
        parser.error("the lab needs root")

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # so that the lab is torn down

    signal.signal(signal.SIGTERM, terminated)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    others = other_labs()
    with own_lab(nodes=2) as lab:
        targets = deploy(lab)
        log(
            f"task {targets.task_id[:12]} on node2: bench {targets.direct[0]}, "
            f"ingress {targets.ingress_address}; mesh via {targets.mesh[0]}:{targets.mesh[1]}"
        )
        runs = measure(lab, targets, args)
    sums = {name: summary(results) for name, results in runs.items()}
    ratio = sums["mesh"]["rps"] / sums["direct"]["rps"]
    paired = paired_ratio(runs)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print()
    print(f"machine: {machine(engine=False)}")
    print(f"method:  {method(args)}")
    for name in ("mesh", "direct"):
        s = sums[name]
        print(
            f"{name:6}  {s['rps']:7.1f} req/s (median; runs {s['rps_min']:.0f}-{s['rps_max']:.0f})"
            f"  p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  "
            f"({s['ok']:.0f} requests, {s['errors']:.0f} errors; "
            f"loadgen CPU {s['client_cpu_pct']:.0f} % of a core)"
        )
    print(
        f"mesh/direct = {ratio:.3f} (ratio of the medians; median of the rounds' ratios "
        f"{paired:.3f}): target ≥ {TARGET_RATIO} {verdict}"
    )
    print(f"load average before {load_before}, after {load_after}")
    if not args.no_write:
        details = details_text(targets, runs, sums, f"{load_before}, after: {load_after}", others)
        write_doc(date, row(date, args, sums["mesh"], sums["direct"], ratio, paired), details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
