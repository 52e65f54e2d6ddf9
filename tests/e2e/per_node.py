"""A 3-host lab whose hosts each run an engine of their own (`swarmlet lab up --engine
per-node`), for the tests in which images travel between hosts: the registry step, dockercoins.

A test module takes it as a plugin, not by importing the fixtures:

    pytest_plugins = ["tests.e2e.per_node"]
    if TYPE_CHECKING:
        from tests.e2e.per_node import PerNodeCli

A fixture imported into two test modules is two fixtures to pytest, each built once per
session, and this lab's config can be up only once at a time; a plugin's fixtures are
registered once, so every module that names the plugin shares the one lab. Nothing else of
this module is imported at run time by a test module: pytest must import it first, to
rewrite its asserts (it warns otherwise, and warnings are errors here).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import partial

import pytest

from swarmlet.lab.lab import Lab
from swarmlet.lab.plan import LabConfig
from swarmlet.lab.testing import lab_running
from tests.e2e.conftest import Cli, eventually

# A subnet no other lab of the suite or the benchmarks uses (labs of one run may be up together).
PER_NODE_LAB = LabConfig.named("swlp", "192.168.248")
HOSTNAMES = ("node1", "node2", "node3")


@pytest.fixture(scope="session")
def per_node_lab() -> Iterator[Lab]:
    with lab_running(PER_NODE_LAB, nodes=3, engine="per-node") as running:
        yield running


class PerNodeCli(Cli):
    """The shared lab's `Cli`, for hosts whose engines are apart: a host's containers and
    images are seen through that host's own swarmletd (`on`)."""

    hostnames = HOSTNAMES

    def on_ok(self, hostname: str, *args: str) -> str:
        done = self.on(hostname, *args)
        assert done.returncode == 0, f"docker {' '.join(args)} on {hostname}: {done.stderr}"
        return done.stdout

    def exec(self, hostname: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """A command in the host's network namespace (127.0.0.1 is that host's)."""
        return self.lab.exec(hostname, argv)

    def no_task_containers(self, hostname: str) -> bool:
        label = f"label={self.lab.config.container_label}"
        return self.on_ok(hostname, "ps", "-aq", "--filter", label) == ""

    def cleanup(self) -> None:
        existing = set(self.ok("service", "ls", "--format", "{{.Name}}").split())
        doomed = [name for name in self.services if name in existing]
        if doomed:
            self("service", "rm", *doomed)
        for hostname in HOSTNAMES:
            eventually(
                partial(self.no_task_containers, hostname),
                timeout=60,
                what=f"every task container on {hostname} removed",
            )
        eventually(
            lambda: self.ok("node", "ps", "-q", *HOSTNAMES) == "",
            what="every task deleted",
        )


@pytest.fixture
def per_node_cli(per_node_lab: Lab) -> Iterator[PerNodeCli]:
    cli = PerNodeCli(per_node_lab)
    for hostname in HOSTNAMES:
        per_node_lab.start(hostname)  # a test that stopped a host and failed leaves it running
    cli.settle()
    yield cli
    cli.cleanup()
