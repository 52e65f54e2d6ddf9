"""What the benchmarks of issue 5 share: their lab, the engine, the machine, docs/benchmarks.md.

- ``own_lab``: the benchmarks' lab ``swlb`` (mesh.py's too, so that two
  benchmarks never run side by side: they share its lock), up for a ``with`` block and torn
  down after it whatever happens; ``lab_of_its_own``: the same for a lab of a benchmark's own
  config, with the benchmarks' lock held too;
- ``Api``: Engine API calls over a unix socket (swarmletd's or the engine's), for polling;
- ``machine``, ``engine_version``, ``busy_with``: what a result is measured on, and what else
  uses the machine;
- ``write_section``: a benchmark's own section of docs/benchmarks.md, replaced with its earlier
  result rows kept and every other section left as it was;
- ``median``, ``percentile``, ``fmt_s``: figures.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from swarmlet.lab.lab import Lab  # noqa: E402
from swarmlet.lab.plan import LabConfig  # noqa: E402

# The benchmarks' lab: one lab, one lock for every benchmark.
LAB = LabConfig.named("swlb", "192.168.250")
DOC = ROOT / "docs" / "benchmarks.md"
IMAGE = "swarmlet-test/busybox:latest"
ENGINE = "unix:///var/run/docker.sock"
DOCKER = "/usr/local/bin/docker"  # the newest CLI on the machine (28.x); /usr/bin/docker else


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def docker_cli() -> str:
    return DOCKER if os.access(DOCKER, os.X_OK) else "/usr/bin/docker"


def docker_env(docker_host: str) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": docker_host}


def docker(docker_host: str, *args: str, timeout: float = 120) -> str:
    """The docker CLI against ``docker_host``; its stdout, or RuntimeError with its stderr."""
    argv = [docker_cli(), *args]
    done = subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        env=docker_env(docker_host),
        timeout=timeout,
    )
    if done.returncode != 0:
        message = done.stderr.strip() or done.stdout.strip()
        raise RuntimeError(f"docker {' '.join(args)} on {docker_host}: {message}")
    return done.stdout


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that ``finally`` blocks (labs, the swarm) still run."""

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


# --- the lab ---------------------------------------------------------------------------------


@contextmanager
def own_lab(nodes: int, managers: int = 1) -> Iterator[Lab]:
    """The benchmarks' lab, up for the block and gone after it, whatever happens (its lock
    held throughout: a second benchmark started meanwhile exits at once); node1 ..
    node<managers> are its managers."""
    with _held_or_exit(LAB.lock_file), _lab_up(LAB, nodes, managers) as lab:
        yield lab


@contextmanager
def lab_of_its_own(config: LabConfig, nodes: int) -> Iterator[Lab]:
    """A lab of a benchmark's own ``config`` (one no test and no other benchmark uses), up
    for the block and gone after it whatever happens. The benchmarks' lock (``LAB``'s) is held
    throughout as well as the config's own, so that this benchmark never runs beside another:
    if either is held, it exits at once."""
    with (
        _held_or_exit(LAB.lock_file),
        _held_or_exit(config.lock_file),
        _lab_up(config, nodes) as lab,
    ):
        yield lab


@contextmanager
def _lab_up(config: LabConfig, nodes: int, managers: int = 1) -> Iterator[Lab]:
    """The lab of ``config`` up for the block, whatever a killed run left taken down first,
    and down after it; the caller holds its lock."""
    lab = Lab(config)
    try:
        lab.down()  # whatever a killed run of a benchmark left
        hosts = f"{nodes} hosts ({managers} managers)"
        log(f"lab {config.name}: up with {hosts} on {config.subnet}.0/24")
        lab.up(nodes, "shared", managers=managers)
        yield lab
    finally:
        log(f"lab {config.name}: down")
        lab.down()
        left = lab.leftovers()
        if left:
            log(f"lab {config.name}: left behind: {left}")


@contextmanager
def _held_or_exit(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(f"another process holds {lock_file}: is a benchmark running?")
        yield


# --- the Engine API over a unix socket -------------------------------------------------------


class Api:
    """One keep-alive client session on a unix socket (``async with Api(host) as api``)."""

    def __init__(self, docker_host: str) -> None:
        self.docker_host = docker_host
        self._path = docker_host.removeprefix("unix://")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        connector = aiohttp.UnixConnector(path=self._path)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def raw(self, method: str, path: str, params: dict[str, str] | None = None) -> bytes:
        """The body of a 2xx answer; RuntimeError otherwise."""
        assert self._session is not None, "use Api in an async with block"
        async with self._session.request(method, f"http://api{path}", params=params) as response:
            body = await response.read()
            if response.status >= 300:
                text = body.decode(errors="replace").strip()
                raise RuntimeError(
                    f"{method} {path} on {self.docker_host}: {response.status} {text}"
                )
            return body

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        body = await self.raw("GET", path, params)
        return json.loads(body) if body.strip() else None


AGENT_READY_S = 600.0  # Docker Swarm's network agent: 15 s for each network plugin gone
INGRESS_GONE_S = 60.0


@contextmanager
def docker_swarm(wanted: bool) -> Iterator[list[float]]:
    """Docker Swarm on the engine for the block, its network agent ready: ``swarm init``,
    then wait for the ingress sandbox; ``swarm leave --force`` whatever happens, then wait
    until the engine's ingress network is gone, and remove ``docker_gwbridge`` if the init
    made it.

    The wait: at init the engine's network agent tells every network driver it knows of the
    new node, also the plugins of labs gone since (their sockets removed; the engine forgets
    no plugin until it restarts), and waits about 15 s on each of those before giving up; the
    ingress sandbox is made only then. Leaving before that leaves the engine's ingress network
    and docker_gwbridge behind, until the next init: never leave before it is there."""
    ready: list[float] = []  # seconds from init to the agent ready
    if not wanted:
        yield ready
        return
    state = docker(ENGINE, "info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    if state != "inactive":
        sys.exit(f"the engine at {ENGINE} is in a swarm already ({state}): not touching it")
    had_gwbridge = bool(docker(ENGINE, "network", "ls", "-q", "--filter", "name=^docker_gwbridge$"))
    try:
        log("Docker Swarm: docker swarm init on the machine's engine")
        docker(
            ENGINE, "swarm", "init", "--advertise-addr", "127.0.0.1",
            "--listen-addr", "127.0.0.1:2377",
        )  # fmt: skip
        started = time.monotonic()
        wait_for(ingress_sandbox, AGENT_READY_S, "Docker Swarm's ingress sandbox")
        ready.append(time.monotonic() - started)
        log(f"Docker Swarm: its network agent ready after {ready[0]:.0f} s")
        yield ready
    finally:
        log("Docker Swarm: docker swarm leave --force")
        try:
            docker(ENGINE, "swarm", "leave", "--force", timeout=300)
        except RuntimeError as exc:
            log(f"Docker Swarm: leaving failed: {exc}")
        try:
            wait_for(lambda: not engine_has("ingress"), INGRESS_GONE_S, "no ingress network")
        except RuntimeError as exc:
            log(f"Docker Swarm: the engine kept its ingress network: {exc}")
        if not had_gwbridge:
            with suppress(RuntimeError):
                docker(ENGINE, "network", "rm", "docker_gwbridge")
        if engine_has("docker_gwbridge") and not had_gwbridge:
            log("Docker Swarm: docker_gwbridge is still there")


def ingress_sandbox() -> bool:
    containers = docker(ENGINE, "network", "inspect", "ingress", "--format", "{{json .Containers}}")
    return "ingress-sbox" in containers


def engine_has(network: str) -> bool:
    return bool(docker(ENGINE, "network", "ls", "-q", "--filter", f"name=^{network}$").strip())


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except RuntimeError:
            pass  # not there yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {seconds:.0f} s: {what}")
        time.sleep(1)


def filters(**values: Sequence[str]) -> dict[str, str]:
    """The ``filters`` query parameter (keys with ``_`` for ``-``)."""
    return {"filters": json.dumps({k.replace("_", "-"): list(v) for k, v in values.items()})}


# --- the machine -----------------------------------------------------------------------------


def machine(engine: bool = True) -> str:
    """The machine a figure was measured on (and the engine's version, for the benchmarks that
    use it)."""
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    kib = int(Path("/proc/meminfo").read_text().split()[1])
    described = (
        f"{os.cpu_count()} vCPU {model}, {kib / 2**20:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    return f"{described}, Docker Engine {engine_version()}" if engine else described


def engine_version() -> str:
    try:
        out = docker(ENGINE, "version", "--format", "{{.Server.Version}}", timeout=20)
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def busy_with(needles: Sequence[str]) -> list[str]:
    """The command lines of other processes that mention any of ``needles`` (pgrep -f)."""
    found = []
    mine = {os.getpid(), os.getppid()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(part.decode(errors="replace") for part in argv if part)
        if any(needle in line for needle in needles):
            found.append(f"{entry.name} {line[:120]}")
    return found


# Test and CI runs use the machine's engine: a benchmark would disturb them and be disturbed.
TEST_RUNS = ("bash .ci/run", "pytest")


def other_work() -> str:
    """Test runs and other benchmarks using the machine now, for the record ("none" if none)."""
    found = busy_with((*TEST_RUNS, "benchmarks/"))
    mine = Path(sys.argv[0]).name
    found = [line for line in found if mine not in line]
    return "; ".join(line.split(" ", 1)[1][:80] for line in found) or "none"


def refuse_if_tests_run(parser_error: Any) -> None:
    busy = busy_with(TEST_RUNS)
    if busy:
        parser_error(
            "a test or CI run uses the machine's engine; try again when it is over:\n  "
            + "\n  ".join(busy)
        )


# --- figures ---------------------------------------------------------------------------------


def cpu_s(pid: int, children: bool = False) -> float:
    """The CPU time (user and system) ``pid`` has used, in seconds; with ``children``, also
    that of the children it has waited for (the commands it ran)."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """The CPU time the whole machine has spent busy, every CPU (``/proc/stat``), in seconds."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_s(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


# --- docs/benchmarks.md ----------------------------------------------------------------------


def write_section(script: str, render: Any, new_rows: Sequence[str]) -> None:
    """Replace the section of ``script`` (between its begin/end markers) with
    ``render(rows)``, rows being its earlier result rows (table lines starting ``| 20``) plus
    ``new_rows``; a section not there yet is added at the end. The rest stays as it was."""
    begin, end = markers(script)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    rows: list[str] = []
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        old, after = rest.split(end, 1)
        rows = [line for line in old.splitlines() if line.startswith("| 20")]
        after = after.lstrip("\n")
    else:
        before, after = text.rstrip("\n") + "\n\n", ""
    rows.extend(new_rows)
    section = f"{begin}\n{render(rows).strip()}\n{end}\n"
    DOC.write_text(before + section + ("\n" + after if after else ""))
    log(f"wrote {DOC.relative_to(ROOT)}")


def markers(script: str) -> tuple[str, str]:
    return f"<!-- benchmarks/{script}: begin -->", f"<!-- benchmarks/{script}: end -->"
