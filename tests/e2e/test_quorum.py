"""A swarm on etcd that lost its quorum, and `docker swarm init --force-new-cluster` (issue 14,
point 4), with the stock docker CLI: three managers and a worker on a lab of their own
(``swlq``); node2's and node3's swarmletd are killed (their etcd members die with them), so
node1 answers Swarm's lost quorum (503) until it forces a new cluster of itself alone, keeping
every object.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from swarmlet.errors import NO_LEADER
from swarmlet.lab.lab import docker_cli
from swarmlet.lab.plan import LabConfig
from swarmlet.lab.system import processes_mentioning
from swarmlet.lab.testing import lab_running
from tests.e2e.conftest import eventually
from tests.e2e.test_managers import IMAGE, SLEEP, ManagersCli

QUORUM_LAB = LabConfig.named("swlq", "192.168.244")
# How soon a manager that lost its quorum refuses: a request waits up to 3 s for an etcd
# election, 5 s for a member that holds it (lost_quorum.py); the CLI's own time on top.
REFUSED_WITHIN_S = 6.0
LOST_QUORUM = f"Error response from daemon: {NO_LEADER}"


@pytest.fixture
def swarm() -> Iterator[ManagersCli]:
    with lab_running(QUORUM_LAB, nodes=4, managers=3) as lab:
        yield ManagersCli(lab)


def _etcd_of(cli: ManagersCli, hostname: str) -> list[str]:
    """The host's etcd member, if it runs ("PID ARGV")."""
    return processes_mentioning([f"--data-dir={cli.lab.host(hostname).state_dir}/etcd"])


def _objects(cli: ManagersCli) -> dict[str, Any]:
    def ls(*args: str) -> list[str]:
        return sorted(cli.on_ok("node1", *args, "--format", "{{.Name}}").split())

    web = json.loads(cli.on_ok("node1", "service", "inspect", "web"))[0]
    return {
        "services": ls("service", "ls"),
        "secrets": ls("secret", "ls"),
        "configs": ls("config", "ls"),
        "networks": ls("network", "ls", "--filter", "scope=swarm"),
        "web": (web["ID"], web["Spec"]),
    }


def _refused_in_time(cli: ManagersCli, *args: str) -> float:
    """Run ``docker ARGS`` on node1: Swarm's lost quorum, answered within REFUSED_WITHIN_S.
    Returns how long it took."""
    started = time.monotonic()
    done = cli.on("node1", *args)
    took = time.monotonic() - started
    assert done.returncode != 0, f"docker {' '.join(args)} succeeded: {done.stdout}"
    assert done.stderr.startswith(LOST_QUORUM), done.stderr
    assert took < REFUSED_WITHIN_S, f"docker {' '.join(args)} refused after {took:.1f} s"
    return took


def test_two_managers_down_then_force_new_cluster_keeps_every_object(
    swarm: ManagersCli,
) -> None:
    cli = swarm
    lab = cli.lab
    cli.on_ok("node1", "network", "create", "-d", "overlay", "backend")
    for kind, name, data in (("secret", "pw", "hunter2"), ("config", "conf", "a=1")):
        subprocess.run(
            [docker_cli(), kind, "create", name, "-"],
            input=data,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_HOST": lab.docker_host},
        )
    cli.on_ok(
        "node1",
        "service", "create", "-d", "--name", "web", "--replicas", "4",
        "--network", "backend", "--secret", "pw", "--config", "conf",
        IMAGE, *SLEEP,
    )  # fmt: skip
    cli.running_on("node1", "web", 4)
    before = _objects(cli)
    assert all(_etcd_of(cli, h) for h in ("node1", "node2", "node3"))

    # node2's and node3's swarmletd killed (SIGKILL); their etcd members end with them.
    assert lab.stop("node2")
    assert lab.stop("node3")
    eventually(
        lambda: not _etcd_of(cli, "node2") and not _etcd_of(cli, "node3"),
        timeout=15,
        what="node2's and node3's etcd members gone",
    )

    # Writes and reads through node1 get Swarm's 503, soon: moby's errNoLeader.
    took = [
        _refused_in_time(cli, "service", "create", "-d", "--name", "late", IMAGE, *SLEEP),
        _refused_in_time(cli, "service", "ls"),
        _refused_in_time(cli, "node", "ls"),
        _refused_in_time(cli, "secret", "create", "pw2", "/etc/hostname"),
    ]
    print(f"lost quorum refused after {', '.join(f'{t:.2f}' for t in took)} s")
    # As moby does, /info and the network list still answer.
    assert "Swarm: active" in cli.on_ok("node1", "info")
    assert "backend" in cli.on_ok("node1", "network", "ls")

    # Not on a worker: Swarm's refusal.
    on_worker = cli.on("node4", "swarm", "init", "--force-new-cluster")
    assert on_worker.returncode != 0
    assert on_worker.stderr.startswith(
        "Error response from daemon: This node is not a swarm manager."
    ), on_worker.stderr

    node1 = lab.host("node1").address
    started = time.monotonic()
    init = cli.on("node1", "swarm", "init", "--force-new-cluster", "--advertise-addr", node1)
    assert init.returncode == 0, init.stderr
    print(f"swarm init --force-new-cluster took {time.monotonic() - started:.2f} s")
    node1_id = cli.on_ok("node1", "info", "--format", "{{.Swarm.NodeID}}").strip()
    assert node1_id in init.stdout
    # node1's member is a cluster of itself alone.
    assert "--force-new-cluster" not in " ".join(_etcd_of(cli, "node1"))

    # Every object kept; the service converges on node1 and the worker.
    eventually(lambda: cli.on("node1", "service", "ls").returncode == 0, what="node1 answers")
    assert _objects(cli) == before

    # node2 and node3 are Down, with no manager status: as in SwarmKit, which fills it from
    # the raft's members, of which they are none any more.
    def rows() -> dict[str, str]:
        out = cli.on_ok(
            "node1", "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}"
        )
        return {line.split(" ", 1)[0]: line.split(" ", 1)[1].strip() for line in out.splitlines()}

    eventually(
        lambda: rows() == {
            "node1": "Ready Leader", "node2": "Down", "node3": "Down", "node4": "Ready",
        },
        timeout=60,
        what="node1 Leader, node2 and node3 Down without a manager status",
    )  # fmt: skip

    # The service's tasks on node2 and node3 run again on node1 and the worker.
    def web_on_the_living() -> bool:
        out = cli.on_ok(
            "node1", "service", "ps", "web", "--filter", "desired-state=running",
            "--format", "{{.Node}} {{.CurrentState}}",
        )  # fmt: skip
        placed = [line.split()[:2] for line in out.splitlines() if line]
        return len(placed) == 4 and all(
            node in ("node1", "node4") and state == "Running" for node, state in placed
        )

    eventually(web_on_the_living, timeout=90, what="web's 4 tasks running on node1 and node4")
    cli.on_ok("node1", "service", "create", "-d", "--name", "after", "--replicas", "2",
              IMAGE, *SLEEP)  # fmt: skip
    cli.running_on("node1", "after", 2)

    # As in SwarmKit, managers that are no members are removed without a demotion.
    cli.on_ok("node1", "node", "rm", "node2", "node3")
    assert sorted(rows()) == ["node1", "node4"]

    # A manager can join again: the worker leaves and joins with the manager token.
    token = cli.on_ok("node1", "swarm", "join-token", "-q", "manager").strip()
    cli.on_ok("node4", "swarm", "leave")
    cli.on_ok("node4", "swarm", "join", "--token", token, f"{node1}:2377")
    eventually(
        lambda: cli.manager_status_list("node4") == ["Leader", "Reachable"],
        timeout=90,
        what="node4 a reachable manager",
    )
    cli.running_on("node4", "web", 4)
