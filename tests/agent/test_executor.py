"""The container plan for a task: name, labels, config and host config, as Swarm makes them."""

from __future__ import annotations

from swarmlet.agent.executor import container_name, plan_container, stop_timeout
from swarmlet.models import SECOND_NS, ContainerSpec, ResourceRequirements, ResourceSpec


def test_name_and_swarm_labels(make_task):
    task = make_task("busybox:1", labels={"app": "web"})
    plan = plan_container(task, "node1", {"com.swarmlet.lab": "swl"})
    assert plan.name == container_name(task) == f"web.1.{task.id}"
    assert plan.image == "busybox:1"
    assert plan.config["Labels"] == {
        "app": "web",
        "com.swarmlet.lab": "swl",
        "com.docker.swarm.service.id": "web-id",
        "com.docker.swarm.service.name": "web",
        "com.docker.swarm.task.id": task.id,
        "com.docker.swarm.task.name": f"web.1.{task.id}",
        "com.docker.swarm.node.id": "node1",
        "com.docker.swarm.task": "",
    }


def test_swarm_labels_cannot_be_overridden(make_task):
    task = make_task(labels={"com.docker.swarm.node.id": "elsewhere"})
    plan = plan_container(task, "node1", {"com.docker.swarm.task.id": "other"})
    assert plan.config["Labels"]["com.docker.swarm.node.id"] == "node1"
    assert plan.config["Labels"]["com.docker.swarm.task.id"] == task.id


def test_config_from_the_container_spec(make_task):
    task = make_task(
        command=["sh", "-c"],
        args=["echo hi"],
        env=["A=1"],
        dir="/srv",
        user="nobody",
        hostname="h1",
        stop_signal="SIGINT",
        stop_grace_period=1_500_000_000,
        init=True,
        mounts=[{"Type": "volume", "Source": "data", "Target": "/data"}],
    )
    plan = plan_container(task, "node1", {})
    config = {k: v for k, v in plan.config.items() if k != "Labels"}
    assert config == {
        "Image": "busybox",
        "Entrypoint": ["sh", "-c"],
        "Cmd": ["echo hi"],
        "Env": ["A=1"],
        "WorkingDir": "/srv",
        "User": "nobody",
        "Hostname": "h1",
        "StopSignal": "SIGINT",
        "StopTimeout": 2,
    }
    assert plan.stop_timeout == 2
    assert plan.host_config == {
        "Init": True,
        "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}],
        "Isolation": "default",
    }


def test_command_without_args_does_not_inherit_the_image_cmd(make_task):
    plan = plan_container(make_task(command=["sleep", "3600"]), "node1", {})
    assert plan.config["Entrypoint"] == ["sleep", "3600"]
    assert plan.config["Cmd"] == []


def test_args_alone_are_the_cmd(make_task):
    plan = plan_container(make_task(args=["--verbose"]), "node1", {})
    assert "Entrypoint" not in plan.config
    assert plan.config["Cmd"] == ["--verbose"]


def test_limits_become_host_config(make_task):
    task = make_task()
    limits = ResourceSpec(nano_cpus=500_000_000, memory_bytes=64 * 1024**2)
    task = task.replace(spec=task.spec.replace(resources=ResourceRequirements(limits=limits)))
    plan = plan_container(task, "node1", {})
    assert plan.host_config == {
        "NanoCpus": 500_000_000,
        "Memory": 64 * 1024**2,
        "Isolation": "default",
    }


def test_stop_timeout_defaults_to_10s_and_rounds_up():
    assert stop_timeout(ContainerSpec()) == 10
    assert stop_timeout(ContainerSpec(stop_grace_period=0)) == 0
    assert stop_timeout(ContainerSpec(stop_grace_period=SECOND_NS // 10)) == 1
    assert stop_timeout(ContainerSpec(stop_grace_period=3 * SECOND_NS)) == 3


def test_a_task_without_a_name_still_gets_one(make_task):
    task = make_task().replace(name=None)
    assert container_name(task) == f"web.1.{task.id}"
