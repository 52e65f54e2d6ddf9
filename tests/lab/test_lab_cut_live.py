"""Cutting a lab host off the others and healing it, on a real three-host lab; and a lab of
two managers (on etcd), formed and removed without a trace.

Needs root and an engine (skipped without, failed under CI=true). A lab config of its own
(`swlm`, 192.168.246.0/24), so the shared test lab is not cut.
"""

import time

import pytest
from click.testing import CliRunner

from swarmlet.cli.main import cli
from swarmlet.lab import api
from swarmlet.lab.lab import Lab
from swarmlet.lab.plan import LabConfig
from swarmlet.lab.testing import lab_reserved

pytestmark = pytest.mark.lab

CONFIG = LabConfig.named("swlm", "192.168.246")
# Bounds on waiting, not what is asserted: the dispatcher marks a node Down after three
# missed heartbeats (15 s by default), and a healed agent reconnects with its backoff.
WAIT_S = 90


def node_states(lab: Lab) -> dict[str, str]:
    listed = lab.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}", check=True)
    return dict(line.split() for line in listed.stdout.splitlines())


def wait_for(what, predicate):
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_S} s: {what}")
        time.sleep(0.5)


def ping(lab: Lab, node: str, address: str) -> int:
    return lab.exec(node, ["busybox", "ping", "-c", "1", "-W", "1", address]).returncode


def lab_cli(lab: Lab, *args: str):
    return CliRunner().invoke(cli, ["lab", *args], obj=lab)


def test_a_cut_host_goes_down_in_the_swarm_and_comes_back_when_healed():
    with lab_reserved(CONFIG) as lab:
        plan = lab.up(nodes=3)
        node1, node3 = plan.host("node1"), plan.host("node3")
        assert [h.role for h in plan.hosts] == ["manager", "worker", "worker"]
        assert node_states(lab) == {"node1": "Ready", "node2": "Ready", "node3": "Ready"}

        assert lab.cut("node3") is True
        assert lab.cut("node3") is False  # idempotent
        assert [s.cut for s in lab.status()] == [False, False, True]

        # Nothing crosses, either way; node3's own address and loopback still work.
        assert ping(lab, "node1", node3.address) != 0
        assert ping(lab, "node3", node1.address) != 0
        assert ping(lab, "node3", CONFIG.gateway) != 0
        assert ping(lab, "node3", node3.address) == 0
        assert ping(lab, "node1", plan.host("node2").address) == 0
        wait_for("node3 Down", lambda: node_states(lab)["node3"] == "Down")
        assert node_states(lab) == {"node1": "Ready", "node2": "Ready", "node3": "Down"}
        # Its swarmletd runs on and answers on its socket.
        assert api.run_sync(api.ping(node3.docker_host))
        assert lab.status()[2].pid is not None

        healed = lab_cli(lab, "heal", "node3")
        assert healed.exit_code == 0, healed.output
        assert "node3: healed" in healed.output
        assert "node3: was not cut off" in lab_cli(lab, "heal", "node3").output
        assert ping(lab, "node1", node3.address) == 0
        wait_for("node3 Ready", lambda: node_states(lab)["node3"] == "Ready")

        status = lab_cli(lab, "status")
        assert status.exit_code == 0
        assert "cut off" not in status.stdout

        # The CLI cuts too, and `down` takes the cut host with the rest.
        assert "node3: cut off" in lab_cli(lab, "cut", "3").output
        lab.down()
        assert lab.leftovers() == []


def test_a_lab_of_two_managers_forms_and_goes_without_a_trace():
    with lab_reserved(CONFIG) as lab:
        lab.up(nodes=2, managers=2)
        # node2 joined with the manager token: it serves the swarm from its own etcd member.
        node2 = lab.host("node2")
        assert (node2.state_dir / "etcd.json").exists()
        listed = lab.docker(
            "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}", check=True
        )
        statuses = dict(line.split() for line in listed.stdout.splitlines())
        assert sorted(statuses.values()) == ["Leader", "Reachable"]
        lab.down()
        assert lab.leftovers() == []
