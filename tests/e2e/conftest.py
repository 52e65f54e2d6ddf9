"""End-to-end tests: the stock docker CLI against a 3-host lab of real swarmletd daemons.

One lab serves the whole session (bringing one up takes seconds, not minutes); every test
removes what it created, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from swarmlet.lab.lab import Lab, docker_cli
from swarmlet.lab.testing import TEST_LAB, lab_running


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    with lab_running(TEST_LAB, nodes=3) as running:
        yield running


class Cli:
    """The stock docker CLI pointed at the lab's manager, with the services a test made
    removed after it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.services: list[str] = []

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.lab.docker(*args, timeout=timeout)

    def on(self, hostname: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI against another host's swarmletd."""
        env = {**os.environ, "DOCKER_HOST": self.lab.host(hostname).docker_host}
        return subprocess.run(
            [docker_cli(), *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str, timeout: float = 120) -> str:
        done = self(*args, timeout=timeout)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout

    def fails(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode != 0, f"docker {' '.join(args)} succeeded: {done.stdout}"
        return done.stderr

    def create(self, name: str, *args: str) -> str:
        """`docker service create --name NAME -d ARGS`; returns the service ID."""
        self.services.append(name)
        return self.ok("service", "create", "--name", name, "--detach=true", *args).strip()

    def tasks(self, *services: str, running_only: bool = False) -> list[dict[str, Any]]:
        """`docker service ps` rows as dicts (Name, Node, DesiredState, CurrentState, Error)."""
        args = ["service", "ps", "--no-trunc", "--format", "{{json .}}", *services]
        if running_only:
            args[2:2] = ["--filter", "desired-state=running"]
        return [json.loads(line) for line in self.ok(*args).splitlines() if line.strip()]

    def running(self, service: str, count: int) -> None:
        """Wait until ``count`` tasks of the service run, and nothing else of it moves."""

        def settled() -> bool:
            rows = self.tasks(service, running_only=True)
            states = [r["CurrentState"].split()[0] for r in rows]
            return states.count("Running") == count == len(rows)

        eventually(settled, what=f"{count} tasks of {service} running")

    def inspect_tasks(self, service: str, *filters: str) -> list[dict[str, Any]]:
        """`docker inspect` of the service's tasks (those `service ps` lists with ``filters``,
        as `desired-state=running`)."""
        args = ["service", "ps", "-q", "--no-trunc"]
        for value in filters:
            args += ["--filter", value]
        ids = self.ok(*args, service).split()
        return json.loads(self.ok("inspect", "--type", "task", *ids)) if ids else []  # type: ignore[no-any-return]

    def node_id(self, hostname: str) -> str:
        return self.ok("node", "inspect", hostname, "--format", "{{.ID}}").strip()

    def inspect(self, kind: str, ref: str) -> dict[str, Any]:
        return json.loads(self.ok(kind, "inspect", ref))[0]  # type: ignore[no-any-return]

    def cleanup(self) -> None:
        existing = set(self.ok("service", "ls", "--format", "{{.Name}}").split())
        doomed = [name for name in self.services if name in existing]
        if doomed:
            self("service", "rm", *doomed)
        # The next test starts on a quiet cluster: no task of these services left.
        eventually(
            lambda: (
                self.ok("ps", "-aq", "--filter", f"label={self.lab.config.container_label}") == ""
            ),
            timeout=60,
            what="every task container removed",
        )
        eventually(
            lambda: self.ok("node", "ps", "-q", "node1", "node2", "node3") == "",
            what="every task deleted",
        )

    def settle(self) -> None:
        """Wait until the cluster's objects stop changing (a lab just up, a test's cleanup)."""

        def unchanged() -> bool:
            first = self.ok("node", "ls", "--format", "{{json .}}")
            time.sleep(0.5)
            return first == self.ok("node", "ls", "--format", "{{json .}}")

        eventually(unchanged, what="the nodes to settle")


@pytest.fixture
def cli(lab: Lab) -> Iterator[Cli]:
    cli = Cli(lab)
    for hostname in ("node1", "node2", "node3"):
        lab.start(hostname)  # a test that stopped a host and failed leaves it running again
    cli.settle()
    yield cli
    cli.cleanup()


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    """Poll until ``check()`` returns something truthy (returned) or the time is up."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    pytest.fail(f"not within {timeout} s: {what or check}; last: {last}")
