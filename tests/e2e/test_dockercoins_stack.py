"""Issue 11, point 5: the tutorial's dockercoins compose file as a stack on the 3-host lab.

`docker stack deploy -c demo/dockercoins/docker-compose.yml dockercoins` with the stock CLI:
the five services converge on the `dockercoins_dockercoins` overlay, the worker mines (webui's
`/json` on port 8000 shows the hash count growing), rng on 8001 and hasher on 8002 answer
through the routing mesh, and `docker stack rm` leaves no service, network or task container,
nor any host's engine copy of the network. On failure the message shows `docker stack ps` and
the errors the lab's swarmletds logged during the test.
The lab's hosts share the machine's engine, which has the images (scripts/images/dockercoins.sh).
Every request is made from inside a lab host's namespace, to the lab's own addresses.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from swarmlet.lab.lab import Lab, docker_cli
from tests.e2e.conftest import Cli, eventually

pytestmark = pytest.mark.lab

COMPOSE = Path(__file__).resolve().parents[2] / "demo" / "dockercoins" / "docker-compose.yml"
STACK = "dockercoins"
NETWORK = f"{STACK}_dockercoins"
SERVICES = ("hasher", "redis", "rng", "webui", "worker")
PORTS = {"webui": 8000, "rng": 8001, "hasher": 8002}
NAMESPACE = f"label=com.docker.stack.namespace={STACK}"
HOSTS = ("node1", "node2", "node3")
BUSYBOX = "/bin/busybox"
# busybox's own `wget -T` crashes (Debian's 1.35): bound it with `timeout` instead.
WGET = f"{BUSYBOX} timeout 3 {BUSYBOX} wget -qO-"
# The swarmletd log lines a failure's message shows.
WORRYING = (" ERROR ", " WARNING ", "swarmlet.agent.local_networks")


def lines(cli: Cli, *args: str) -> list[str]:
    return [line for line in cli.ok(*args).splitlines() if line.strip()]


def on_host(lab: Lab, hostname: str, script: str) -> str:
    """A busybox shell script run in the host's namespace: its stdout, '' if it failed."""
    done = lab.exec(hostname, [BUSYBOX, "sh", "-c", f"set -o pipefail; {script}"], timeout=10)
    return done.stdout.strip() if done.returncode == 0 else ""


def url(lab: Lab, hostname: str, service: str, path: str) -> str:
    return f"http://{lab.host(hostname).address}:{PORTS[service]}{path}"


def mined(lab: Lab, hostname: str, on: str, past: int) -> dict[str, Any]:
    """webui's /json through port 8000 of host ``on``, fetched from ``hostname``, if it shows
    more than ``past`` hashes; {} otherwise, and while it does not answer 200 (a 503 while
    redis does not answer makes busybox's wget fail)."""
    body = on_host(lab, hostname, f"{WGET} {url(lab, on, 'webui', '/json')}")
    answer: dict[str, Any] = json.loads(body) if body else {}
    return answer if answer.get("hashes", 0) > past else {}


def on_engine(lab: Lab, *args: str) -> list[str]:
    """The docker CLI against the engine the lab's hosts share: its stdout's lines."""
    env = {**os.environ, "DOCKER_HOST": lab.config.shared_engine}
    done = subprocess.run(
        [docker_cli(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)} on the engine: {done.stderr}"
    return [line for line in done.stdout.splitlines() if line.strip()]


def leftovers(cli: Cli) -> dict[str, list[str]]:
    """What of the stack is left: its services and networks in the swarm, and its task
    containers on the engine."""
    return {
        "services": lines(cli, "service", "ls", "--filter", NAMESPACE, "--format", "{{.Name}}"),
        "networks": lines(cli, "network", "ls", "--filter", NAMESPACE, "--format", "{{.Name}}"),
        "containers": on_engine(
            cli.lab, "ps", "-a", "--filter", NAMESPACE, "--format", "{{.Names}}"
        ),
    }


def nothing_left(cli: Cli) -> bool:
    left = leftovers(cli)
    assert not any(left.values()), f"left: {left}"
    return True


def no_engine_copies(lab: Lab) -> bool:
    """No host's copy of the stack's network (``<network>.<hostname>``, the engine network a
    host's swarmletd makes for its tasks on an overlay) left on the engine."""
    names = on_engine(lab, "network", "ls", "--format", "{{.Name}}")
    copies = [name for name in names if name.startswith(f"{NETWORK}.")]
    assert not copies, f"engine networks left: {copies}"
    return True


@dataclass(frozen=True)
class Logs:
    """Where each host's swarmletd log stood when the test began."""

    offsets: dict[Path, int]

    @classmethod
    def now(cls, lab: Lab) -> Logs:
        files = [lab.host(hostname).log_file for hostname in HOSTS]
        return cls({path: path.stat().st_size if path.exists() else 0 for path in files})

    def since(self) -> list[str]:
        """The errors, warnings and engine network copies logged since then, up to 15 lines
        per host."""
        found = []
        for path, offset in self.offsets.items():
            try:
                with path.open("rb") as log_file:
                    log_file.seek(offset)
                    text = log_file.read().decode(errors="replace").splitlines()
            except OSError as exc:
                found.append(f"{path}: {exc}")
                continue
            worrying = [line for line in text if any(word in line for word in WORRYING)]
            found.append(f"{path}, during the test:")
            found.extend(worrying[-15:] or ["(none)"])
        return found


def within(cli: Cli, logs: Logs, check: Callable[[], Any], timeout: float, what: str) -> Any:
    """``eventually``; on failure, the stack's tasks and the lab's errors in the message."""
    try:
        return eventually(check, timeout=timeout, what=what)
    except pytest.fail.Exception as exc:
        tasks = cli("stack", "ps", STACK, "--no-trunc", "--format", "{{json .}}").stdout
        shown = [f"docker stack ps {STACK}:", tasks.strip() or "(none)", *logs.since()]
        pytest.fail("\n".join([str(exc.msg), *shown]))


def converged(cli: Cli) -> bool:
    """Every service of the stack at 1/1 (`stack services`), every task Running (`stack ps`);
    AssertionError with both tables otherwise (``eventually`` shows the last one)."""
    services = lines(cli, "stack", "services", STACK, "--format", "{{.Name}} {{.Replicas}}")
    rows = [
        json.loads(line)
        for line in lines(
            cli, "stack", "ps", STACK, "--filter", "desired-state=running", "--format", "{{json .}}"
        )
    ]
    shown = [f"{r['Name']} {r['Node']} {r['CurrentState']} {r['Error']}" for r in rows]
    assert sorted(services) == [f"{STACK}_{name} 1/1" for name in SERVICES], (
        f"services: {services}; tasks: {shown}"
    )
    assert len(rows) == len(SERVICES), f"tasks: {shown}"
    assert all(row["CurrentState"].startswith("Running") for row in rows), f"tasks: {shown}"
    return True


@pytest.fixture
def logs(lab: Lab) -> Logs:
    return Logs.now(lab)


@pytest.fixture
def stack(cli: Cli) -> Iterator[str]:
    """The stack's name; whatever a failed test left of it removed after the test."""
    yield STACK
    if any(leftovers(cli).values()):
        cli("stack", "rm", STACK)
        eventually(
            lambda: nothing_left(cli),
            timeout=90,
            what=f"nothing of stack {STACK} left after the test",
        )


def test_the_dockercoins_stack_runs_mines_answers_and_is_removed(
    cli: Cli, lab: Lab, logs: Logs, stack: str
) -> None:
    out = cli.ok("stack", "deploy", "-c", str(COMPOSE), stack, timeout=180)
    assert f"Creating network {NETWORK}" in out
    for name in SERVICES:
        assert f"Creating service {stack}_{name}" in out
    within(cli, logs, lambda: converged(cli), timeout=120, what="the dockercoins stack converged")

    network = cli.inspect("network", NETWORK)
    assert (network["Driver"], network["Scope"]) == ("overlay", "swarm")
    for name in SERVICES:
        spec = cli.inspect("service", f"{stack}_{name}")["Spec"]
        assert [n["Target"] for n in spec["TaskTemplate"]["Networks"]] == [network["Id"]]
        published = [p["PublishedPort"] for p in spec.get("EndpointSpec", {}).get("Ports", [])]
        assert published == ([PORTS[name]] if name in PORTS else []), name

    # The worker mines: the hash count webui reads from redis grows. Read from node3 through
    # node1's port 8000, then again through each host's.
    first = within(
        cli,
        logs,
        lambda: mined(lab, "node3", "node1", 0),
        timeout=120,
        what="webui's /json on node1:8000 showing hashes",
    )
    assert set(first) == {"coins", "hashes", "now"}, first
    for host in HOSTS:
        within(
            cli,
            logs,
            partial(mined, lab, "node3", host, first["hashes"]),
            timeout=60,
            what=f"the hash count past {first['hashes']} on {host}:8000",
        )

    # rng on 8001: GET /8 is 8 random bytes; hasher on 8002: a POST's body's SHA-256 in hex.
    size = within(
        cli,
        logs,
        lambda: on_host(lab, "node1", f"{WGET} {url(lab, 'node2', 'rng', '/8')} | {BUSYBOX} wc -c"),
        timeout=30,
        what="rng's GET /8 on node2:8001",
    )
    assert size == "8"
    digest = within(
        cli,
        logs,
        lambda: on_host(
            lab, "node2", f"{WGET} --post-data=dockercoins {url(lab, 'node3', 'hasher', '/')}"
        ),
        timeout=30,
        what="hasher's POST / on node3:8002",
    )
    assert digest == hashlib.sha256(b"dockercoins").hexdigest()
    assert len(digest) == 64

    cli.ok("stack", "rm", stack)
    within(
        cli,
        logs,
        lambda: nothing_left(cli),
        timeout=90,
        what=f"nothing of stack {stack} left after docker stack rm",
    )
    # Each host's engine copy of the network goes with the host's last task on it, as the
    # engine's own copy of an overlay does on a Docker Swarm node.
    within(
        cli,
        logs,
        lambda: no_engine_copies(lab),
        timeout=30,
        what=f"the hosts' engine networks {NETWORK}.<host> removed after docker stack rm",
    )
