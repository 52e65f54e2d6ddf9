"""`up` then `down` of a real lab, shared and per-node engines: down leaves nothing behind.

Needs root and an engine (skipped without, failed under CI=true) and the real swarmletd
(or a stand-in named by SWARMLET_LAB_SWARMLETD, see tests/lab/fake_swarmletd.py).
"""

import shutil

import pytest

from swarmlet.lab import api
from swarmlet.lab.lab import docker_cli
from swarmlet.lab.plan import TEST_IMAGES, LabConfig, network_up, plan_lab
from swarmlet.lab.system import LabError, processes_mentioning, run
from swarmlet.lab.testing import lab_reserved, lab_running

pytestmark = pytest.mark.lab

CONFIG = LabConfig.named("swlv", "192.168.251")


def machine(config):
    """What the machine holds that could be the lab's, listed from scratch (not by the lab)."""
    netns = run(["ip", "netns", "list"]).stdout.split()
    lines = run(["ip", "-o", "link"]).stdout.splitlines()
    links = [line.split(":")[1].strip().partition("@")[0] for line in lines]
    label = f"label={config.container_label}"
    containers = run([docker_cli(), "ps", "-aq", "--filter", label]).stdout
    return {
        "namespaces": sorted(ns for ns in netns if ns.startswith(config.name + "-")),
        "links": sorted(link for link in links if link.startswith(config.name + "-")),
        "containers": containers.split(),
        "directories": [str(d) for d in (config.run_dir, config.state_root) if d.exists()],
        "processes": processes_mentioning([f"{config.run_dir}/", f"{config.state_root}/"]),
    }


def start_task_like_container(docker_host, label):
    """A container as swarmletd would leave it after a crash: labelled, running."""
    argv = [docker_cli(), "-H", docker_host, "run", "-d", "--label", label]
    return run([*argv, "swarmlet-test/busybox:latest", "sleep", "1d"]).stdout.strip()


def test_down_leaves_no_namespace_link_process_or_container_behind():
    with lab_running(CONFIG, nodes=2) as lab:
        pids = [status.pid for status in lab.status()]
        assert all(pids)
        container = start_task_like_container(CONFIG.shared_engine, CONFIG.container_label)

        during = machine(CONFIG)
        assert during["namespaces"] == ["swlv-node1", "swlv-node2"]
        assert sorted(during["links"]) == ["swlv-lab0", "swlv-v1", "swlv-v2"]
        assert during["containers"] == [container[:12]]
        assert sorted(int(p.split()[0]) for p in during["processes"]) == sorted(pids)

        lab.down()

        assert machine(CONFIG) == {key: [] for key in during}
        assert lab.leftovers() == []
        assert not lab.is_up()


def test_up_refuses_to_build_over_a_lab_that_is_up():
    with lab_running(CONFIG, nodes=1) as lab:
        with pytest.raises(LabError, match="run `swarmlet lab down` first"):
            lab.up(1)
        assert lab.status()[0].pid is not None  # the refusal touched nothing


def test_a_failed_up_leaves_nothing_behind():
    dying = CONFIG.model_copy(update={"swarmletd": ("/bin/false",)})
    with lab_reserved(dying) as lab:
        with pytest.raises(LabError, match="exited before it answered"):
            lab.up(2)

        assert lab.leftovers() == []


def test_down_finds_what_a_killed_up_left_without_its_lab_json():
    with lab_reserved(CONFIG) as lab:
        iptables = shutil.which("iptables") is not None
        for command in network_up(plan_lab(CONFIG, 2), iptables=iptables):
            run(command)
        (CONFIG.run_dir / "node2").mkdir(parents=True)
        assert not lab.is_up()
        assert "namespace swlv-node2" in lab.leftovers()

        lab.down()

        assert lab.leftovers() == []


def test_per_node_engines_live_in_their_hosts_and_go_with_the_lab():
    with lab_running(CONFIG, nodes=2, engine="per-node") as lab:
        docker = docker_cli()
        for status in lab.status():
            host = status.host
            assert host.engine is not None
            assert status.engine_running
            assert f"--docker-host {host.engine.docker_host}" in " ".join(host.command)
            engine = [docker, "-H", host.engine.docker_host]
            images = run([*engine, "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
            assert sorted(images.split()) == sorted(TEST_IMAGES)
            # The engine's host network is the host's namespace, not the machine's.
            in_host = [*engine, "run", "--rm", "--network", "host", "swarmlet-test/busybox:latest"]
            seen = run([*in_host, "ip", "-4", "-o", "addr"]).stdout
            assert f"inet {host.address}/24" in seen
        node2_engine = lab.plan.hosts[1].engine
        assert node2_engine is not None
        label = CONFIG.container_label
        start_task_like_container(node2_engine.docker_host, label)
        assert api.run_sync(api.labelled_containers(node2_engine.docker_host, label))

        lab.down()

        assert lab.leftovers() == []
        assert machine(CONFIG)["links"] == []
