"""A task on an overlay network with its own DNS servers (`--dns`): the host's embedded DNS
answers the swarm's names and forwards the others to the task's servers, as Swarm's embedded
DNS takes a container's DNS servers as its external ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
QUICK = ["--stop-grace-period", "1s"]
UPSTREAM = Path(__file__).with_name("dns_upstream.py")


def container_of(cli: Cli, service: str) -> str:
    ids = cli.ok("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}")
    assert ids.split(), f"no running container of {service}"
    return ids.split()[0]


@pytest.fixture
def upstream(cli: Cli) -> Iterator[str]:
    """A DNS server on node2's lab address answering `outside.test` with 192.0.2.7."""
    host = cli.lab.host("node2")
    argv = host.in_netns((sys.executable, str(UPSTREAM), host.address, "outside.test", "192.0.2.7"))
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield host.address
    finally:
        server.kill()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


def test_a_task_with_its_own_dns_server_resolves_outside_names_there(
    cli: Cli, upstream: str
) -> None:
    cli.ok("network", "create", "--driver", "overlay", "lookups")
    try:
        cli.create("named", "--network", "lookups", *QUICK, IMAGE, "sleep", "1000")
        cli.create("asker", "--network", "lookups", "--dns", upstream, "--constraint",
                   "node.hostname == node1", *QUICK, IMAGE, "sleep", "1000")  # fmt: skip
        cli.running("asker", 1)
        cli.running("named", 1)
        container = container_of(cli, "asker")

        def lookup(name: str) -> str:
            return cli("exec", container, "nslookup", name).stdout

        # The outside name, from the task's own server; the swarm's, from the embedded DNS.
        assert "192.0.2.7" in eventually(
            lambda: "192.0.2.7" in lookup("outside.test") and lookup("outside.test"),
            what="outside.test from the task's own server",
        )
        [vip] = [
            entry["Addr"].split("/")[0]
            for entry in cli.inspect("service", "named")["Endpoint"]["VirtualIPs"]
        ]
        assert vip in lookup("named")
        # A task without --dns has no upstream (the lab has none): the outside name is unknown.
        plain = container_of(cli, "named")
        assert "192.0.2.7" not in cli("exec", plain, "nslookup", "outside.test").stdout
    finally:
        for service in ("asker", "named"):
            cli("service", "rm", service)
        eventually(
            lambda: cli("network", "rm", "lookups").returncode == 0, what="the network removed"
        )
