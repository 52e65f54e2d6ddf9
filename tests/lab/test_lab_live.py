"""A real two-host lab: namespaces on a bridge, swarmletd in each, a swarm formed.

Needs root and an engine (skipped without, failed under CI=true) and the real swarmletd
(or a stand-in named by SWARMLET_LAB_SWARMLETD, see tests/lab/fake_swarmletd.py).
"""

from pathlib import Path

import pytest
from click.testing import CliRunner

from swarmlet.cli.main import cli
from swarmlet.lab import api
from swarmlet.lab.lab import Lab
from swarmlet.lab.plan import LabConfig
from swarmlet.lab.system import run
from swarmlet.lab.testing import lab_running

pytestmark = pytest.mark.lab

CONFIG = LabConfig.named("swlu", "192.168.252")
NOWHERE = "192.0.2.1"  # TEST-NET-1: documentation only, routed nowhere


@pytest.fixture(scope="module")
def lab2():
    with lab_running(CONFIG, nodes=2) as lab:
        yield lab


def ping(lab, node, address):
    return lab.exec(node, ["busybox", "ping", "-c", "1", "-W", "2", address])


def test_hosts_are_namespaces_with_eth0_on_the_bridge(lab2):
    gateway = run(["ip", "-4", "-o", "addr", "show", "dev", CONFIG.bridge]).stdout
    assert f"inet {CONFIG.gateway}/24" in gateway
    for host in lab2.plan.hosts:
        assert (Path("/run/netns") / host.netns).exists()
        port = run(["ip", "-o", "link", "show", "dev", host.veth]).stdout
        assert f"master {CONFIG.bridge}" in port
        eth0 = lab2.exec(host.hostname, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        assert f"inet {host.address}/24" in eth0.stdout
        lo = lab2.exec(host.hostname, ["ip", "-o", "link", "show", "dev", "lo"]).stdout
        assert "<LOOPBACK,UP,LOWER_UP>" in lo


def test_hosts_reach_each_other_and_the_gateway_across_the_bridge(lab2):
    assert ping(lab2, "node1", "192.168.252.12").returncode == 0
    assert ping(lab2, "node2", "192.168.252.11").returncode == 0
    assert ping(lab2, "node2", CONFIG.gateway).returncode == 0


def test_hosts_have_no_route_off_the_lab(lab2):
    routes = lab2.exec("node1", ["ip", "route"], check=True).stdout.splitlines()
    routes = [route.strip() for route in routes]
    assert routes == ["192.168.252.0/24 dev eth0 proto kernel scope link src 192.168.252.11"]

    # No route, so nothing is even sent: the kernel refuses at once.
    result = ping(lab2, "node1", NOWHERE)
    assert result.returncode != 0
    assert "Network is unreachable" in result.stderr


def test_the_machine_forwards_nothing_between_the_lab_and_elsewhere(lab2):
    rules = run(["nft", "list", "table", "inet", CONFIG.nft_table]).stdout

    assert 'iifname "swlu-lab0" oifname != "swlu-lab0" drop' in rules
    assert 'oifname "swlu-lab0" iifname != "swlu-lab0" drop' in rules


def test_the_hosts_form_a_swarm_managed_by_node1(lab2):
    states = api.run_sync(api.node_states(lab2.docker_host))
    assert states == ["ready", "ready"]


def test_the_docker_cli_reaches_the_manager(lab2):
    result = lab2.docker("node", "ls", "--format", "{{.Hostname}}", check=True)

    assert sorted(result.stdout.split()) == ["node1", "node2"]


def test_stop_kills_a_host_daemon_and_start_brings_it_back(lab2):
    before = {status.host.hostname: status.pid for status in lab2.status()}
    node2 = lab2.host("node2")

    assert lab2.stop("node2")
    assert not lab2.stop("node2")
    assert [s.pid for s in lab2.status()] == [before["node1"], None]
    assert not api.run_sync(api.ping(node2.docker_host))

    assert lab2.start("node2")
    assert not lab2.start("node2")
    after = lab2.status()[1].pid
    assert after is not None
    assert after != before["node2"]
    assert api.run_sync(api.ping(node2.docker_host))


def test_start_with_extra_args_is_found_by_any_process_and_a_plain_start_puts_it_back(lab2):
    extra = ["--container-label", "extra=1"]
    assert lab2.stop("node2")
    assert lab2.start("node2", extra_args=extra)
    pid = lab2.status()[1].pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [arg.decode() for arg in cmdline[-2:]] == extra
    # Another process's Lab (no memory of what this one spawned) finds it by its argv.
    elsewhere = Lab(CONFIG)
    assert elsewhere.status()[1].pid == pid
    assert not elsewhere.start("node2")
    assert elsewhere.stop("node2")
    assert lab2.start("node2")
    pid = lab2.status()[1].pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [arg.decode() for arg in cmdline[-len(lab2.host("node2").command) :]] == list(
        lab2.host("node2").command
    )
    assert Lab(CONFIG).status()[1].pid == pid


def test_the_cli_drives_the_lab(lab2):
    runner = CliRunner()

    status = runner.invoke(cli, ["lab", "status"], obj=lab2)
    assert status.exit_code == 0
    assert status.stdout.count("running (pid") == 2

    env = runner.invoke(cli, ["lab", "env"], obj=lab2)
    assert env.stdout == f"export DOCKER_HOST={lab2.docker_host}\n"

    failing = runner.invoke(cli, ["lab", "exec", "node2", "--", "sh", "-c", "exit 3"], obj=lab2)
    assert failing.exit_code == 3

    stop = runner.invoke(cli, ["lab", "stop", "node2"], obj=lab2)
    assert "node2: swarmletd killed" in stop.output
    start = runner.invoke(cli, ["lab", "start", "node2"], obj=lab2)
    assert "node2: swarmletd started" in start.output
    assert lab2.status()[1].pid is not None
