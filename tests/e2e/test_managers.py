"""Several managers on etcd, with the stock docker CLI (issue 14, points 1 and 5): a lab of
three managers and two workers (its leader demoted at the end), and a running swarm of one
manager that moves from SQLite to etcd when a worker is promoted, without a task restarted.

Each test brings up a lab of its own shape on one config of its own (``swlm``); the lab's lock
makes runs take turns.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from swarmlet.lab.lab import Lab, docker_cli
from swarmlet.lab.plan import LabConfig
from swarmlet.lab.testing import lab_running
from tests.e2e.conftest import Cli, eventually

MANAGERS_LAB = LabConfig.named("swlm", "192.168.246")
IMAGE = "swarmlet-test/busybox:latest"
SLEEP = ("sleep", "100000")
# Swarm's words (docker/cli's `swarm join-token`).
JOIN_TOKEN_TEXT = (
    "To add a manager to this swarm, run the following command:\n\n"
    "    docker swarm join --token {token} {addr}\n\n"
)


class ManagersCli(Cli):
    def on_ok(self, hostname: str, *args: str) -> str:
        done = self.on(hostname, *args)
        assert done.returncode == 0, f"docker {' '.join(args)} on {hostname}: {done.stderr}"
        return done.stdout

    def manager_statuses(self, hostname: str = "node1") -> dict[str, str]:
        """`node ls` on ``hostname``: each node's MANAGER STATUS by hostname."""
        rows = self.on_ok(hostname, "node", "ls", "--format", "{{.Hostname}}={{.ManagerStatus}}")
        return dict(line.split("=", 1) for line in rows.splitlines() if line)

    def manager_status_list(self, hostname: str) -> list[str]:
        rows = self.on_ok(hostname, "node", "ls", "--format", "{{.ManagerStatus}}")
        return sorted(line for line in rows.splitlines() if line)

    def running_on(self, hostname: str, service: str, count: int) -> None:
        def settled() -> bool:
            out = self.on_ok(
                hostname,
                "service",
                "ps",
                service,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.CurrentState}}",
            )
            states = [line.split()[0] for line in out.splitlines() if line]
            return states.count("Running") == count == len(states)

        eventually(settled, timeout=60, what=f"{count} tasks of {service} running")


def _engine_containers(lab: Lab, service: str) -> dict[str, tuple[str, str]]:
    """The service's task containers on the engine (shared by the lab's hosts): ID -> (node
    ID, the time it started). A restarted container keeps its ID but not its start."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    label = f"label={lab.config.container_label}"
    named = f"label=com.docker.swarm.service.name={service}"
    ids = subprocess.run(
        [docker_cli(), "ps", "-q", "--no-trunc", "--filter", label, "--filter", named],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    if not ids:
        return {}
    inspected = json.loads(
        subprocess.run(
            [docker_cli(), "inspect", *ids], check=True, capture_output=True, text=True, env=env
        ).stdout
    )
    return {
        c["Id"]: (
            c["Config"]["Labels"].get("com.docker.swarm.node.id", ""),
            c["State"]["StartedAt"],
        )
        for c in inspected
    }


@pytest.fixture
def three_managers() -> Iterator[ManagersCli]:
    with lab_running(MANAGERS_LAB, nodes=5, managers=3) as lab:
        yield ManagersCli(lab)


@pytest.fixture
def one_manager() -> Iterator[ManagersCli]:
    with lab_running(MANAGERS_LAB, nodes=3, managers=1) as lab:
        yield ManagersCli(lab)


def test_three_managers_and_two_workers(three_managers: ManagersCli) -> None:
    cli = three_managers
    statuses = cli.manager_statuses()
    assert sorted(statuses) == ["node1", "node2", "node3", "node4", "node5"]
    assert sorted(statuses[h] for h in ("node1", "node2", "node3")) == [
        "Leader",
        "Reachable",
        "Reachable",
    ]
    assert statuses["node4"] == statuses["node5"] == ""
    # Every manager answers from the one store.
    assert cli.manager_statuses("node2") == cli.manager_statuses("node3") == statuses

    # A service made through another manager than node1 runs its replicas.
    cli.on_ok(
        "node2", "service", "create", "-d", "--name", "via2", "--replicas", "3", IMAGE, *SLEEP
    )
    cli.on_ok(
        "node3", "service", "create", "-d", "--name", "via3", "--replicas", "2", IMAGE, *SLEEP
    )
    cli.running_on("node1", "via2", 3)
    cli.running_on("node2", "via3", 2)
    names = cli.on_ok("node3", "service", "ls", "--format", "{{.Name}}").split()
    assert sorted(names) == ["via2", "via3"]

    # `swarm join-token manager` on node2: Swarm's text, with node2's address.
    token = cli.on_ok("node2", "swarm", "join-token", "-q", "manager").strip()
    node2 = cli.lab.host("node2").address
    assert cli.on_ok("node2", "swarm", "join-token", "manager") == JOIN_TOKEN_TEXT.format(
        token=token, addr=f"{node2}:2377"
    )
    # The token works: a worker leaves, and joins again through node2 as a fourth manager.
    cli.on_ok("node5", "swarm", "leave")
    cli.on_ok("node5", "swarm", "join", "--token", token, f"{node2}:2377")
    cli.on_ok("node5", "service", "ls")  # a manager of its own store

    def four_managers() -> bool:
        return cli.manager_status_list("node5") == ["Leader", *["Reachable"] * 3]

    eventually(four_managers, timeout=60, what="node5 a reachable manager")

    # The leader can be demoted: it stops leading (its lease given back), another manager
    # takes over, and the demoted node leaves etcd and is a worker; the services run on.
    leader = next(host for host, status in cli.manager_statuses().items() if status == "Leader")
    other = next(host for host in ("node1", "node2", "node3") if host != leader)
    demoted = cli.on_ok(other, "node", "demote", leader)
    assert demoted.strip() == f"Manager {leader} demoted in the swarm."

    def new_leader() -> bool:
        # By rows, not hostnames: node5 is listed twice (it left as a worker, and Swarm keeps
        # that node, Down, beside the manager it came back as).
        return cli.manager_statuses(other)[leader] == "" and cli.manager_status_list(other) == [
            "Leader",
            "Reachable",
            "Reachable",
        ]

    eventually(new_leader, timeout=60, what=f"a new leader after {leader} was demoted")
    eventually(
        lambda: "not a swarm manager" in cli.on(leader, "service", "ls").stderr,
        timeout=60,
        what=f"{leader} to answer as a worker",
    )
    # It answers as a worker once its manager stops; its member leaves etcd after that.
    eventually(
        lambda: not (cli.lab.host(leader).state_dir / "etcd.json").exists(),
        timeout=60,
        what=f"{leader}'s member removed",
    )
    cli.running_on(other, "via2", 3)
    cli.running_on(other, "via3", 2)


def test_promoting_a_second_manager_moves_the_swarm_to_etcd(one_manager: ManagersCli) -> None:
    cli = one_manager
    lab = cli.lab
    cli.ok("network", "create", "-d", "overlay", "backend")
    for kind, name, data in (("secret", "pw", "hunter2"), ("config", "conf", "a=1")):
        subprocess.run(
            [docker_cli(), kind, "create", name, "-"],
            input=data,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_HOST": lab.docker_host},
        )
    cli.create(
        "web",
        "--replicas",
        "3",
        "--network",
        "backend",
        "--secret",
        "pw",
        "--config",
        "conf",
        IMAGE,
        *SLEEP,
    )
    cli.running("web", 3)

    def objects(hostname: str) -> dict[str, Any]:
        def ls(kind: str) -> list[str]:
            return sorted(cli.on_ok(hostname, kind, "ls", "-q").split())

        found: dict[str, Any] = {k: ls(k) for k in ("service", "secret", "config", "node")}
        found["network"] = sorted(
            cli.on_ok(hostname, "network", "ls", "-q", "--filter", "scope=swarm").split()
        )
        found["web"] = json.loads(cli.on_ok(hostname, "service", "inspect", "web"))[0]
        found["web"].pop("Version")
        found["tasks"] = sorted(
            cli.on_ok(
                hostname, "service", "ps", "-q", "--filter", "desired-state=running", "web"
            ).split()
        )
        return found

    before = objects("node1")
    containers = _engine_containers(lab, "web")
    assert len(containers) == 3

    cli.ok("node", "promote", "node2")
    node1, node2 = lab.host("node1").state_dir, lab.host("node2").state_dir
    eventually(
        lambda: (node1 / "etcd.json").exists() and (node2 / "etcd.json").exists(),
        timeout=120,
        what="node1 moved to etcd and node2 joined it",
    )
    assert (node1 / "store.db.moved").exists()
    assert not (node1 / "store.db").exists()
    # node2 serves the store itself once its manager runs.
    eventually(lambda: cli.on("node2", "service", "ls").returncode == 0, what="node2 answers")

    def statuses() -> bool:
        found = cli.manager_statuses()
        return sorted(found.values()) == ["", "Leader", "Reachable"]

    eventually(statuses, timeout=60, what="node1 leads and node2 is reachable")
    # Every agent has a session with the manager on etcd again: a global service made now
    # runs on each node. By then each agent was given its tasks again, and none restarted.
    cli.create("probe", "--mode", "global", IMAGE, *SLEEP)
    cli.running("probe", 3)
    cli.running("web", 3)
    assert _engine_containers(lab, "web") == containers
    probe = cli.inspect("service", "probe")["ID"][:12]  # as `service ls -q` shows it
    before["service"] = sorted([*before["service"], probe])
    assert objects("node1") == before
    assert objects("node2") == before

    # Demoted, node2 leaves etcd and is a worker again; the swarm goes on on node1's member.
    cli.ok("node", "demote", "node2")
    eventually(
        lambda: "not a swarm manager" in cli.on("node2", "service", "ls").stderr,
        timeout=60,
        what="node2 to answer as a worker",
    )
    eventually(
        lambda: not (node2 / "etcd.json").exists(), timeout=60, what="node2's member removed"
    )
    assert (node1 / "etcd.json").exists()
    eventually(lambda: cli.manager_statuses()["node2"] == "", what="node2 without a status")
    cli.running("web", 3)
    assert _engine_containers(lab, "web") == containers
