"""Issue 11, point 1: swarmlet on a real host, beside the machine's own dockerd and its
firewall (FORWARD policy DROP, br_netfilter), not in a lab namespace.

A one-node swarm runs in this machine's root network namespace, advertised on 127.0.0.1, so
every packet of the test stays on loopback and in the tasks' namespaces.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmlet.ids import new_id
from swarmlet.lab import api
from swarmlet.lab.lab import docker_cli
from swarmlet.lab.testing import require_lab
from tests.conftest import TEST_LABEL
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.lab

IMAGE = "swarmlet-test/busybox:latest"
# A web server answering with the name of the service it belongs to.
WEB = "mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www"
PUBLISHED = 8080


class RootHost:
    """A swarmletd of this test's own in the machine's root namespace, driven by the CLI."""

    def __init__(self, workdir: Path) -> None:
        self.docker_host = f"unix://{workdir / 'api.sock'}"
        self.label = f"{TEST_LABEL}={new_id()}"
        argv = [
            str(Path(sys.prefix) / "bin" / "swarmletd"),
            "--state-dir",
            str(workdir / "state"),
            "--host",
            self.docker_host,
            "--hostname",
            "swarmlet-root-host",
            "--container-label",
            self.label,
        ]
        log = (workdir / "swarmletd.log").open("ab")
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        api.run_sync(
            api.wait_ping(
                self.docker_host,
                alive=lambda: self.process.poll() is None,
                what="the root namespace's swarmletd",
            )
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        return subprocess.run(
            [docker_cli(), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout

    def container_of(self, service: str) -> str:
        ids = self.ok("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}")
        assert ids.split(), f"no running container of {service}"
        return ids.split()[0]

    def fetch_from(self, service: str, url: str) -> str:
        """What a task of ``service`` gets from ``url`` (busybox's own `wget -T` crashes)."""
        done = self("exec", self.container_of(service), "timeout", "3", "wget", "-qO-", url)
        return done.stdout.strip() if done.returncode == 0 else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Whatever a failed test left: the engine keeps no container of ours.
        api.run_sync(api.remove_labelled_containers("unix:///var/run/docker.sock", self.label))


def host_state() -> dict[str, Any]:
    """What of the root namespace swarmlet may touch: links, addresses, routes, the firewall
    (nftables and iptables, counters left out) and the sysctls the mesh sets."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    links = sorted(
        (link["ifname"], link.get("link_type", ""), link.get("mtu", 0), link.get("master", ""))
        for link in json.loads(run("ip", "-j", "link", "show"))
    )
    addresses = sorted(
        (link["ifname"], sorted(f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]))
        for link in json.loads(run("ip", "-j", "address", "show"))
    )
    routes = sorted(
        json.dumps(route, sort_keys=True)
        for route in json.loads(run("ip", "-j", "route", "show", "table", "all"))
    )
    nft = re.sub(r"counter packets \d+ bytes \d+", "counter", run("nft", "list", "ruleset"))
    iptables = [
        re.sub(r"\[\d+:\d+\]", "", line)
        for line in run("iptables-save").splitlines()
        if not line.startswith("#")
    ]
    sysctls = {
        key: Path("/proc/sys", key).read_text().strip()
        for key in ("net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet")
    }
    return {
        "links": links,
        "addresses": addresses,
        "routes": routes,
        "nft": nft,
        "iptables": iptables,
        "sysctls": sysctls,
    }


@pytest.fixture
def root_host(tmp_path: Path) -> Iterator[RootHost]:
    require_lab()
    host = RootHost(tmp_path)
    try:
        yield host
    finally:
        host("swarm", "leave", "--force")
        host.stop()


def test_a_one_node_swarm_beside_the_machines_dockerd_works_and_leaves_no_trace(
    root_host: RootHost,
) -> None:
    forward = subprocess.run(
        ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True
    )
    # The case our users have: the engine's own firewall is in place.
    assert "-P FORWARD DROP" in forward.stdout, forward.stdout
    before = host_state()

    root_host.ok("swarm", "init", "--advertise-addr", "127.0.0.1")
    root_host.ok("network", "create", "--driver", "overlay", "app")
    for name, extra in (("web", ["--publish", f"{PUBLISHED}:80"]), ("peer", [])):
        root_host.ok(
            "service", "create", "--detach", "--name", name, "--network", "app",
            *extra, IMAGE, "sh", "-c", WEB.format(name=name),
        )  # fmt: skip

    def both_running() -> bool:
        states = root_host.ok("service", "ps", "--format", "{{.CurrentState}}", "web", "peer")
        return states.split().count("Running") == 2

    eventually(both_running, timeout=60, what="web and peer running")

    # The routing mesh, on the host's loopback.
    def published() -> str:
        # Refused until the host's mesh has the port: the tasks run a moment before it does.
        url = f"http://127.0.0.1:{PUBLISHED}/"
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:
                return answer.read().decode().strip()
        except OSError:
            return ""

    assert eventually(published, what="the published port answering") == "web"
    # Task to task across the overlay bridge, by the service's name (its VIP) and by
    # tasks.<name> (the task's own address): through Docker's FORWARD chain.
    for here, there in (("peer", "web"), ("web", "peer")):
        for name in (there, f"tasks.{there}"):
            got = eventually(
                lambda here=here, name=name: root_host.fetch_from(here, f"http://{name}/"),
                what=f"{here} reaching {name}",
            )
            assert got == there

    root_host.ok("swarm", "leave", "--force")
    after = host_state()
    for part, found in before.items():
        assert after[part] == found, f"{part} changed by the swarm"
    assert root_host.ok("ps", "-aq", "--filter", f"label={root_host.label}") == ""
