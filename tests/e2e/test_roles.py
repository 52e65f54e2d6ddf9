"""Roles: `docker node promote` makes node2 a manager the CLI can drive (the swarm's store
moves to etcd, and node2 holds it too), `docker node demote` makes it a worker again, and what
cannot be demoted is refused."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
WORKER = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster"
    " state. Please run this command on a manager node or promote the current node to a"
    " manager."
)
LAST_MANAGER = "attempting to demote the last manager of the swarm"


def nodes_seen_from(cli: Cli, hostname: str) -> dict[str, dict[str, Any]]:
    """`docker node ls` on a host, by hostname: ID, Self, ManagerStatus… (the CLI's fields)."""
    done = cli.on(hostname, "node", "ls", "--format", "{{json .}}")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {row["Hostname"]: row for row in rows}


def refuses_as_a_worker(cli: Cli, hostname: str) -> bool:
    done = cli.on(hostname, "node", "ls")
    return done.returncode != 0 and WORKER in done.stderr


def manages(cli: Cli, hostname: str) -> bool:
    done = cli.on(hostname, "node", "ls")
    return done.returncode == 0


def test_a_promoted_node_is_a_manager_until_it_is_demoted(cli: Cli) -> None:
    assert refuses_as_a_worker(cli, "node2")
    assert "Swarm: active" in cli.on("node2", "info").stdout
    node2 = cli.node_id("node2")

    cli.ok("node", "promote", "node2")
    try:
        eventually(lambda: manages(cli, "node2"), what="node2 to answer as a manager")
        # A second manager moves the swarm's store to etcd, where both managers hold it
        # (demoting the leader is tested on a lab of its own: tests/e2e/test_managers.py).
        eventually(
            lambda: all(
                (cli.lab.host(host).state_dir / "etcd.json").exists() for host in ("node1", "node2")
            ),
            timeout=120,
            what="the swarm's store on etcd, with node1 and node2 its members",
        )
        eventually(lambda: manages(cli, "node2"), what="node2 to answer as a manager on etcd")
        # `docker node ls` on node2: itself marked, the leader and itself as managers.
        table = cli.on("node2", "node", "ls").stdout.splitlines()
        row = next(line for line in table if line.startswith(node2))
        assert row.split()[:3] == [node2, "*", "node2"]
        seen = eventually(
            lambda: (
                (n := nodes_seen_from(cli, "node2"))["node2"]["ManagerStatus"] == "Reachable" and n
            ),
            what="node2 Reachable",
        )
        assert seen["node2"]["Self"] is True
        assert seen["node1"]["Self"] is False
        assert seen["node1"]["ManagerStatus"] == "Leader"
        assert seen["node3"]["ManagerStatus"] == ""
        info = cli.on("node2", "info", "--format", "{{json .Swarm}}")
        swarm = json.loads(info.stdout)
        assert (swarm["NodeID"], swarm["ControlAvailable"]) == (node2, True)
        assert cli.on("node2", "node", "inspect", "self", "--format", "{{.ID}}").stdout == (
            f"{node2}\n"
        )

        # A service created through node2 runs.
        cli.services.append("via-node2")
        created = cli.on(
            "node2", "service", "create", "--name", "via-node2", "--detach=true", IMAGE, *SERVE
        )
        assert created.returncode == 0, created.stderr
        cli.running("via-node2", 1)

    finally:
        cli.ok("node", "demote", "node2")

    eventually(lambda: refuses_as_a_worker(cli, "node2"), what="node2 to answer as a worker")
    eventually(
        lambda: nodes_seen_from(cli, "node1")["node2"]["ManagerStatus"] == "",
        what="node2 without a manager status",
    )
    assert LAST_MANAGER in cli.fails("node", "demote", "node1")
    assert nodes_seen_from(cli, "node1")["node1"]["ManagerStatus"] == "Leader"
