"""Issue 2, points 4, 7 and 8: draining a host, a host's daemon dying, the manager restarting."""

from __future__ import annotations

import time

from swarmlet.lab.lab import Lab
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def placement(cli: Cli, service: str) -> dict[str, str]:
    """Running task name → node, of the tasks meant to run."""
    return {
        row["Name"]: row["Node"]
        for row in cli.tasks(service, running_only=True)
        if row["CurrentState"].startswith("Running")
    }


def node_status(cli: Cli, hostname: str) -> str:
    return cli.ok("node", "inspect", hostname, "--format", "{{.Status.State}}").strip()


def test_drain_moves_tasks_away_and_active_moves_nothing_back(cli: Cli) -> None:
    cli.create("drained", "--replicas", "6", "--stop-grace-period", "1s", IMAGE, *SERVE)
    eventually(
        lambda: (
            sorted(set(placement(cli, "drained").values())) == ["node1", "node2", "node3"]
            and len(placement(cli, "drained")) == 6
        )
    )

    cli.ok("node", "update", "--availability", "drain", "node2")
    try:
        moved = eventually(
            lambda: (
                (p := placement(cli, "drained")) and len(p) == 6 and "node2" not in p.values() and p
            )
        )
        assert cli.ok("node", "inspect", "node2", "--format", "{{.Spec.Availability}}") == (
            "drain\n"
        )
        # The drained host's tasks are shut down, not just replaced.
        eventually(
            lambda: all(
                not r["CurrentState"].startswith("Running")
                for r in cli.tasks("drained")
                if r["Node"] == "node2"
            )
        )
    finally:
        cli.ok("node", "update", "--availability", "active", "node2")
    assert node_status(cli, "node2") == "ready"
    # Nothing moves back, as in Swarm: the placement stays what the drain made it.
    time.sleep(3)
    assert placement(cli, "drained") == moved


def test_a_host_whose_daemon_dies_is_down_and_its_tasks_run_elsewhere(cli: Cli, lab: Lab) -> None:
    cli.create("survivor", "--replicas", "6", "--stop-grace-period", "1s", IMAGE, *SERVE)
    eventually(
        lambda: (
            len(set(placement(cli, "survivor").values())) == 3
            and len(placement(cli, "survivor")) == 6
        )
    )
    node3 = cli.node_id("node3")
    label = f"com.docker.swarm.node.id={node3}"
    on_node3 = cli.ok("ps", "-q", "--filter", f"label={label}").split()
    assert on_node3

    lab.stop("node3")
    try:
        eventually(lambda: node_status(cli, "node3") == "down", timeout=20, what="node3 down")
        eventually(
            lambda: (p := placement(cli, "survivor")) and len(p) == 6 and "node3" not in p.values(),
            timeout=20,
            what="node3's tasks running elsewhere",
        )
        # Its containers outlive the daemon, as after a crash.
        assert set(on_node3) <= set(cli.ok("ps", "-q", "--filter", f"label={label}").split())
    finally:
        lab.start("node3")
    eventually(lambda: node_status(cli, "node3") == "ready", what="node3 ready again")
    # The restarted agent stops and removes the containers of the tasks replaced meanwhile.
    eventually(
        lambda: not set(on_node3) & set(cli.ok("ps", "-aq", "--filter", f"label={label}").split()),
        what="node3's stale containers gone",
    )
    assert len(placement(cli, "survivor")) == 6


def test_restarting_the_manager_loses_nothing(cli: Cli, lab: Lab) -> None:
    cli.create("kept", "--replicas", "3", IMAGE, *SERVE)
    cli.create("kept-global", "--mode", "global", IMAGE, *SERVE)
    eventually(lambda: len(placement(cli, "kept")) == 3 and len(placement(cli, "kept-global")) == 3)

    def state() -> tuple[str, str, str]:
        return (
            cli.ok("service", "ls", "--format", "{{.ID}} {{.Name}} {{.Mode}} {{.Image}}"),
            cli.ok("node", "ls", "--format", "{{.ID}} {{.Hostname}} {{.ManagerStatus}}"),
            cli.ok("service", "ps", "kept", "kept-global", "-q", "--no-trunc"),
        )

    before = state()
    lab.stop("node1")
    lab.start("node1")
    assert eventually(lambda: state() == before and len(placement(cli, "kept")) == 3)
    eventually(lambda: all(node_status(cli, n) == "ready" for n in ("node1", "node2", "node3")))
    replicas = cli.ok(
        "service", "ls", "--filter", "name=kept", "--format", "{{.Name}} {{.Replicas}}"
    )
    assert sorted(replicas.splitlines()) == ["kept 3/3", "kept-global 3/3"]
