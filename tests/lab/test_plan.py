from pathlib import Path

import pytest
from pydantic import ValidationError

from swarmlet.lab.plan import (
    LabConfig,
    LabPlan,
    network_down,
    network_up,
    plan_lab,
)

CONFIG = LabConfig(swarmletd=("/venv/bin/swarmletd",))


def test_hosts_are_named_and_addressed_by_their_number():
    plan = plan_lab(CONFIG, 3)

    assert [h.hostname for h in plan.hosts] == ["node1", "node2", "node3"]
    assert [h.netns for h in plan.hosts] == ["swl-node1", "swl-node2", "swl-node3"]
    assert [h.veth for h in plan.hosts] == ["swl-v1", "swl-v2", "swl-v3"]
    assert [h.address for h in plan.hosts] == ["192.168.254.11", "192.168.254.12", "192.168.254.13"]
    assert plan.manager.listen_addr == "192.168.254.11:2377"
    assert CONFIG.bridge == "swl-lab0"
    assert CONFIG.gateway == "192.168.254.1"


def test_swarmletd_argv_is_the_documented_one():
    host = plan_lab(CONFIG, 2).hosts[1]

    assert host.argv == (
        "nsenter", "--net=/run/netns/swl-node2",
        "/venv/bin/swarmletd",
        "--state-dir", "/var/lib/swarmlet-lab/node2",
        "--host", "unix:///run/swarmlet-lab/node2/docker.sock",
        "--docker-host", "unix:///var/run/docker.sock",
        "--hostname", "node2",
        "--container-label", "com.swarmlet.lab=swl",
        "--network-plugin", "swl-node2",
        "--shared-engine",
    )  # fmt: skip
    assert host.pid_file == Path("/run/swarmlet-lab/node2/swarmletd.pid")
    assert host.log_file == Path("/var/log/swarmlet/lab-node2.log")
    assert host.docker_host == "unix:///run/swarmlet-lab/node2/docker.sock"


def test_the_lab_is_reached_through_node1():
    plan = plan_lab(CONFIG, 3)

    assert plan.docker_host == "unix:///run/swarmlet-lab/node1/docker.sock"
    assert CONFIG.lab_file == Path("/run/swarmlet-lab/lab.json")


def test_a_shared_engine_lab_starts_no_engines():
    assert all(host.engine is None for host in plan_lab(CONFIG, 3).hosts)


def test_per_node_engine_lives_in_the_host_and_swarmletd_uses_it():
    host = plan_lab(CONFIG, 2, "per-node").hosts[1]
    engine = host.engine
    assert engine is not None

    argv = host.in_netns(engine.command)
    assert argv[:3] == ("nsenter", "--net=/run/netns/swl-node2", "dockerd")
    flags = " ".join(argv)
    assert "--data-root /var/lib/swarmlet-lab/node2/docker" in flags
    assert "--exec-root /run/swarmlet-lab/node2/engine" in flags
    assert "--pidfile /run/swarmlet-lab/node2/engine.pid" in flags
    assert "-H unix:///run/swarmlet-lab/node2/engine.sock" in flags
    assert "--containerd-namespace swl-node2" in flags
    assert "--iptables=false" in argv
    assert "--bridge=none" in argv
    docker_host = host.command[host.command.index("--docker-host") + 1]
    assert docker_host == "unix:///run/swarmlet-lab/node2/engine.sock"


def test_hosts_are_found_by_hostname_namespace_or_number():
    plan = plan_lab(CONFIG, 3)

    assert plan.host("node2") == plan.host("swl-node2") == plan.host("2") == plan.hosts[1]
    with pytest.raises(KeyError, match="node4"):
        plan.host("node4")


@pytest.mark.parametrize("nodes", [0, 51])
def test_node_count_is_bounded_by_the_subnet(nodes):
    with pytest.raises(ValueError, match="1 to 50"):
        plan_lab(CONFIG, nodes)


def test_a_named_lab_shares_nothing_with_the_default_one():
    other = LabConfig.named("swlt", "192.168.253")
    default, test = plan_lab(LabConfig(), 2).hosts[1], plan_lab(other, 2).hosts[1]

    assert other.bridge != CONFIG.bridge
    assert other.container_label == "com.swarmlet.lab=swlt"
    assert other.lock_file == Path("/run/swarmlet-lab-swlt.lock")
    for field in ("netns", "veth", "address", "run_dir", "state_dir", "api_socket", "log_file"):
        assert getattr(default, field) != getattr(test, field), field


@pytest.mark.parametrize("name", ["", "Swl", "toolongname", "a-b"])
def test_lab_names_fit_in_interface_names(name):
    with pytest.raises(ValidationError):
        LabConfig(name=name)


def test_network_up_builds_bridge_then_hosts_then_firewall():
    commands = network_up(plan_lab(CONFIG, 2), iptables=True)

    assert commands[:3] == [
        ("ip", "link", "add", "swl-lab0", "type", "bridge"),
        ("ip", "addr", "add", "192.168.254.1/24", "dev", "swl-lab0"),
        ("ip", "link", "set", "swl-lab0", "up"),
    ]
    assert commands[3:9] == [
        ("ip", "netns", "add", "swl-node1"),
        (
            "ip",
            "link",
            "add",
            "swl-v1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            "swl-node1",
        ),
        ("ip", "link", "set", "swl-v1", "master", "swl-lab0", "up"),
        ("ip", "-n", "swl-node1", "addr", "add", "192.168.254.11/24", "dev", "eth0"),
        ("ip", "-n", "swl-node1", "link", "set", "eth0", "up"),
        ("ip", "-n", "swl-node1", "link", "set", "lo", "up"),
    ]
    # Hosts get no default route and nothing is NATed: no command mentions either.
    flat = [" ".join(command) for command in commands]
    assert not [c for c in flat if "default" in c or "masquerade" in c or "nat" in c.split()]
    assert ("nft", "add", "table", "inet", "swl-lab") in commands
    assert commands[-1][:4] == ("iptables", "-I", "FORWARD", "1")


def test_firewall_drops_whatever_crosses_between_the_lab_and_the_machine():
    commands = network_up(plan_lab(CONFIG, 1), iptables=False)
    rules = [command for command in commands if command[:3] == ("nft", "add", "rule")]

    assert [rule[6:] for rule in rules] == [
        ("iifname", "swl-lab0", "oifname", "!=", "swl-lab0", "drop"),
        ("oifname", "swl-lab0", "iifname", "!=", "swl-lab0", "drop"),
    ]


def test_without_iptables_no_iptables_command_is_planned():
    plan = plan_lab(CONFIG, 2)
    for commands in (network_up(plan, iptables=False), network_down(plan, iptables=False)):
        assert all(command[0] != "iptables" for command in commands)


def test_network_down_removes_what_network_up_made():
    plan = plan_lab(CONFIG, 2)
    down = network_down(plan, iptables=True)

    assert ("ip", "netns", "delete", "swl-node2") in down
    assert ("ip", "link", "delete", "swl-v2") in down
    assert ("ip", "link", "delete", "swl-lab0") in down
    assert ("nft", "delete", "table", "inet", "swl-lab") in down
    added = next(c for c in network_up(plan, iptables=True) if c[0] == "iptables")
    assert down[-1] == ("iptables", "-D", "FORWARD", *added[4:])


def test_a_plan_round_trips_through_lab_json():
    plan = plan_lab(CONFIG, 3, "per-node")

    assert LabPlan.model_validate_json(plan.model_dump_json()) == plan


def test_one_manager_by_default_node1():
    plan = plan_lab(CONFIG, 3)

    assert [h.role for h in plan.hosts] == ["manager", "worker", "worker"]
    assert plan.managers == (plan.manager,)
    assert [h.hostname for h in plan.workers] == ["node2", "node3"]


def test_the_first_m_hosts_are_the_managers():
    plan = plan_lab(CONFIG, 5, managers=3)

    assert [h.hostname for h in plan.managers] == ["node1", "node2", "node3"]
    assert [h.hostname for h in plan.workers] == ["node4", "node5"]
    assert plan.manager.hostname == "node1"  # it inits the swarm; DOCKER_HOST names it
    assert LabPlan.model_validate_json(plan.model_dump_json()) == plan


def test_every_host_may_be_a_manager():
    assert plan_lab(CONFIG, 2, managers=2).workers == ()


@pytest.mark.parametrize("managers", [0, 4])
def test_manager_count_is_between_one_and_the_node_count(managers):
    with pytest.raises(ValueError, match=f"a lab of 3 nodes has 1 to 3 managers, not {managers}"):
        plan_lab(CONFIG, 3, managers=managers)


def test_a_lab_json_of_before_roles_reads_node1_as_its_manager():
    written = plan_lab(CONFIG, 2).model_dump(mode="json")
    for host in written["hosts"]:
        del host["role"]

    plan = LabPlan.model_validate(written)

    assert [h.role for h in plan.hosts] == ["manager", "worker"]
