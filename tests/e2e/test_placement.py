"""Issue 2, points 1, 2 and 5: nodes, placement constraints on node labels, global services."""

from __future__ import annotations

from collections import Counter

from swarmlet.lab.lab import Lab
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
# A process that ends at once on SIGTERM, so stopping tasks takes no grace period.
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def running_nodes(cli: Cli, service: str) -> list[str]:
    return sorted(
        row["Node"]
        for row in cli.tasks(service, running_only=True)
        if row["CurrentState"].startswith("Running")
    )


def test_node_ls_shows_three_ready_active_hosts_with_the_leader_marked(cli: Cli) -> None:
    rows = [
        line.split("\t")
        for line in cli.ok(
            "node",
            "ls",
            "--format",
            "{{.Self}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}",
        ).splitlines()
    ]
    assert sorted(rows) == [
        ["false", "node2", "Ready", "Active", ""],
        ["false", "node3", "Ready", "Active", ""],
        ["true", "node1", "Ready", "Active", "Leader"],
    ]
    table = cli.ok("node", "ls")
    (marked,) = [line for line in table.splitlines() if " * " in line]
    assert "node1" in marked
    assert "Leader" in marked


def test_constraints_on_node_labels_place_as_swarm_does(cli: Cli) -> None:
    cli.ok("node", "update", "--label-add", "sgx=1", "node2")
    try:
        cli.create(
            "ha",
            "-p",
            "80:80",
            "--constraint",
            "node.labels.sgx == 1",
            "--replicas=2",
            IMAGE,
            *SERVE,
        )
        assert eventually(lambda: running_nodes(cli, "ha") == ["node2", "node2"])

        # != 0 matches the nodes without the label too (a missing label is "").
        cli.create("notzero", "--constraint", "node.labels.sgx != 0", "--replicas=3", IMAGE, *SERVE)
        assert eventually(lambda: running_nodes(cli, "notzero") == ["node1", "node2", "node3"])

        cli.create("never", "--constraint", "node.labels.sgx == 2", IMAGE, *SERVE)

        def pending() -> dict[str, str] | None:
            (row,) = cli.tasks("never")
            return row if row["Error"] else None

        row = eventually(pending)
        assert row["CurrentState"].startswith("Pending")
        assert row["Node"] == ""
        assert row["Error"] == (
            '"no suitable node (scheduling constraints not satisfied on 3 nodes)"'
        )
    finally:
        cli.ok("node", "update", "--label-rm", "sgx", "node2")


def test_a_global_service_runs_one_task_on_every_active_host(cli: Cli, lab: Lab) -> None:
    cli.create("everywhere", "--mode", "global", "--stop-grace-period", "1s", IMAGE, *SERVE)
    assert eventually(lambda: running_nodes(cli, "everywhere") == ["node1", "node2", "node3"])

    cli.ok("node", "update", "--availability", "drain", "node3")
    try:
        assert eventually(lambda: running_nodes(cli, "everywhere") == ["node1", "node2"])
        shut = [r for r in cli.tasks("everywhere") if r["Node"] == "node3"]
        assert [r["DesiredState"] for r in shut] == ["Shutdown"]
    finally:
        cli.ok("node", "update", "--availability", "active", "node3")
    assert eventually(lambda: running_nodes(cli, "everywhere") == ["node1", "node2", "node3"])
    assert Counter(running_nodes(cli, "everywhere")) == Counter(["node1", "node2", "node3"])


def test_a_host_that_joins_later_gets_the_global_task(cli: Cli, lab: Lab) -> None:
    cli.create("latecomer", "--mode", "global", IMAGE, *SERVE)
    assert eventually(lambda: running_nodes(cli, "latecomer") == ["node1", "node2", "node3"])
    old_id = cli.node_id("node3")

    # node3 leaves for good and comes back as a new host joining with the worker token.
    leave = cli.on("node3", "swarm", "leave")
    assert leave.returncode == 0, leave.stderr
    eventually(lambda: "Down" in cli.ok("node", "ls", "--filter", f"id={old_id}"), timeout=25)
    cli.ok("node", "rm", old_id)
    assert eventually(lambda: running_nodes(cli, "latecomer") == ["node1", "node2"])
    token = cli.ok("swarm", "join-token", "-q", "worker").strip()
    manager = lab.host("node1")
    joined = cli.on(
        "node3",
        "swarm",
        "join",
        "--token",
        token,
        "--advertise-addr",
        lab.host("node3").address,
        f"{manager.address}:2377",
    )
    assert joined.returncode == 0, joined.stderr
    # Its hostname comes with the description its agent reports as its session opens.
    new_id = eventually(lambda: cli.node_id("node3"), what="node3 known by its hostname")
    assert new_id != old_id
    assert eventually(lambda: running_nodes(cli, "latecomer") == ["node1", "node2", "node3"])
