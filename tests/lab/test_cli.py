"""The `swarmlet lab` commands that need no root: reading a lab's state, and refusing."""

import pytest
from click.testing import CliRunner

from swarmlet.cli.main import cli
from swarmlet.lab.lab import Lab
from swarmlet.lab.plan import LabConfig, plan_lab


@pytest.fixture
def lab(tmp_path):
    config = LabConfig.named(
        "swlc", "192.168.249", run_dir=tmp_path / "run", state_root=tmp_path / "state"
    )
    return Lab(config)


@pytest.fixture
def written(lab):
    """A lab's state as `up` writes it, with no daemon running."""
    lab.config.run_dir.mkdir()
    lab.config.lab_file.write_text(plan_lab(lab.config, 2).model_dump_json())
    return lab


def invoke(lab, *args):
    return CliRunner().invoke(cli, ["lab", *args], obj=lab)


def test_env_prints_the_docker_host_of_node1(written):
    result = invoke(written, "env")

    assert result.exit_code == 0
    assert (
        result.stdout == f"export DOCKER_HOST=unix://{written.config.run_dir}/node1/docker.sock\n"
    )


def test_status_lists_every_host_and_its_daemon(written):
    result = invoke(written, "status")

    assert result.exit_code == 0
    for expected in ("node1", "swlc-node1", "192.168.249.11", "node2", "stopped", "shared"):
        assert expected in result.stdout
    lines = result.stdout.splitlines()
    assert "ROLE" in lines[0]
    assert "manager" in next(line for line in lines if "swlc-node1" in line)
    assert "worker" in next(line for line in lines if "swlc-node2" in line)
    assert all("connected" in line for line in lines if "swlc-node" in line)


def test_stop_of_a_stopped_host_says_so(written):
    result = invoke(written, "stop", "node2")

    assert result.exit_code == 0
    assert "node2: swarmletd was not running" in result.output


def test_an_unknown_host_is_a_clean_error(written):
    result = invoke(written, "stop", "node9")

    assert result.exit_code == 1
    assert "no host 'node9' in the lab (hosts: node1, node2)" in result.output
    assert "Traceback" not in result.output


def test_commands_on_no_lab_say_how_to_make_one(lab):
    result = invoke(lab, "env")

    assert result.exit_code == 1
    assert "no lab is up (start one with `swarmlet lab up`)" in result.output


def test_up_rejects_a_node_count_outside_the_subnet(lab):
    result = invoke(lab, "up", "--nodes", "51")

    assert result.exit_code == 2
    assert "51 is not in the range 1<=x<=50" in result.output


def test_up_rejects_more_managers_than_nodes(lab):
    result = invoke(lab, "up", "--nodes", "2", "--managers", "3")

    assert result.exit_code == 2
    assert "Invalid value for '--managers': 3 managers in a lab of 2 nodes" in result.output
    assert not lab.config.run_dir.exists()


def test_cut_of_an_unknown_host_is_a_clean_error(written):
    result = invoke(written, "cut", "node9")

    assert result.exit_code == 1
    assert "no host 'node9' in the lab (hosts: node1, node2)" in result.output


def test_exec_needs_a_command(written):
    result = invoke(written, "exec", "node1")

    assert result.exit_code == 2
    assert "Missing argument 'COMMAND...'" in result.output
