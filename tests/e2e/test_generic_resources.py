"""Issue 13, points 2, 3 and 4, and point 7's "a generic resource no node has" and "an unknown
device path": generic resources and devices with the stock CLI on the 3-host lab.

node2's swarmletd is restarted with ``--node-generic-resource`` / ``--node-device``
(``Lab.start(extra_args=...)``) and put back as it was at the end, whatever happens. The
device standing in for SGX's is a character device made with ``mknod`` with /dev/null's
numbers (1, 3), in a temporary directory: writing to it is harmless.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from swarmlet.lab.lab import Lab
from swarmlet.lab.system import LabError
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
# A process that ends at once on SIGTERM.
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
QUICK_STOP = ("--stop-grace-period", "1s")
NO_SUITABLE_NODE = '"no suitable node (insufficient resources on 3 nodes)"'
WRITE = ["sh", "-c", "echo enclave > /dev/isgx && echo written"]

Restart = Callable[..., None]


def generic_resources(cli: Cli, hostname: str) -> Any:
    out = cli.ok("node", "inspect", hostname, "--format", "{{json .Description.Resources}}")
    return json.loads(out).get("GenericResources")


def restart(lab: Lab, cli: Cli, extra_args: Sequence[str], advertised: Any) -> None:
    """node2's swarmletd again with ``extra_args``, once the manager has its new description."""
    lab.stop("node2")
    lab.start("node2", extra_args=extra_args)

    def described() -> bool:
        ready = cli.ok("node", "inspect", "node2", "--format", "{{.Status.State}}").strip()
        return ready == "ready" and generic_resources(cli, "node2") == advertised

    eventually(described, timeout=60, what=f"node2 advertising {advertised}")


@pytest.fixture
def node2(lab: Lab, cli: Cli) -> Iterator[Restart]:
    """Restarts node2's swarmletd with extra flags; puts the plain one back after the test."""
    yield lambda extra_args, advertised: restart(lab, cli, extra_args, advertised)
    restart(lab, cli, (), None)


@pytest.fixture
def device(tmp_path: Path) -> Path:
    path = tmp_path / "isgx"
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


def sgx(count: int) -> list[dict[str, Any]]:
    return [{"DiscreteResourceSpec": {"Kind": "sgx", "Value": count}}]


def running_tasks(cli: Cli, service: str) -> list[dict[str, Any]]:
    return [
        task
        for task in cli.inspect_tasks(service, "desired-state=running")
        if task["Status"]["State"] == "running"
    ]


def container_of(cli: Cli, service: str) -> tuple[str, str]:
    """(hostname, container ID) of the service's one running task."""
    (task,) = eventually(lambda: running_tasks(cli, service), what=f"{service} running")
    hostname = cli.ok("node", "inspect", task["NodeID"], "--format", "{{.Description.Hostname}}")
    return hostname.strip(), task["Status"]["ContainerStatus"]["ContainerID"]


def pending_error(cli: Cli, service: str) -> str:
    def pending() -> str:
        rows = [row for row in cli.tasks(service) if row["CurrentState"].startswith("Pending")]
        return rows[0]["Error"] if rows and rows[0]["Error"] else ""

    return str(eventually(pending, what=f"a task of {service} pending with an explanation"))


def test_a_generic_resource_on_one_node_takes_one_task_the_other_waits(
    cli: Cli, node2: Restart
) -> None:
    node2(["--node-generic-resource", "sgx=1"], sgx(1))
    # Only node2 advertises it, as `docker node inspect` shows it on Swarm.
    assert generic_resources(cli, "node1") is None
    assert generic_resources(cli, "node3") is None

    cli.create(
        "enclave", "--generic-resource", "sgx=1", "--replicas", "2", *QUICK_STOP, IMAGE, *SERVE
    )
    (placed,) = eventually(lambda: running_tasks(cli, "enclave"), what="one task running")
    assert placed["NodeID"] == cli.node_id("node2")
    # What it was given: the task's GenericResources in the API (SwarmKit's Assigned...).
    assert placed["GenericResources"] == sgx(1)
    # node1 and node3 have no sgx, node2's one is taken: Swarm's count is 3.
    assert pending_error(cli, "enclave") == NO_SUITABLE_NODE
    hostname, container = container_of(cli, "enclave")
    assert hostname == "node2"
    env = cli.on("node2", "exec", container, "sh", "-c", "echo $DOCKER_RESOURCE_SGX").stdout
    assert env.strip() == "1"
    # Nothing made for the task that waits.
    assert (
        len(cli.ok("ps", "-q", "--filter", "label=com.docker.swarm.service.name=enclave").split())
        == 1
    )


def test_a_task_that_reserves_the_device_gets_it_and_no_other_does(
    cli: Cli, node2: Restart, device: Path
) -> None:
    node2(["--node-device", f"sgx={device}:/dev/isgx"], sgx(1))
    on_node2 = ("--constraint", "node.hostname == node2", *QUICK_STOP)

    cli.create("reserving", "--generic-resource", "sgx=1", *on_node2, IMAGE, *SERVE)
    hostname, container = container_of(cli, "reserving")
    assert hostname == "node2"
    written = cli.on("node2", "exec", container, *WRITE)
    assert written.stdout.strip() == "written", written.stderr
    inspected = json.loads(cli.on("node2", "inspect", container).stdout)[0]
    assert inspected["HostConfig"]["Devices"] == [
        {"PathOnHost": str(device), "PathInContainer": "/dev/isgx", "CgroupPermissions": "rwm"}
    ]

    cli.create("plain", *on_node2, IMAGE, *SERVE)
    _, container = container_of(cli, "plain")
    absent = cli.on("node2", "exec", container, "ls", "/dev/isgx")
    assert absent.returncode != 0
    assert "No such file or directory" in absent.stderr + absent.stdout

    # The workaround users try on Swarm: a bind mount of the device node.
    mount = f"type=bind,source={device},target=/dev/isgx"
    cli.create("bound", "--mount", mount, *on_node2, IMAGE, *SERVE)
    _, container = container_of(cli, "bound")
    written = cli.on("node2", "exec", container, *WRITE)
    assert written.stdout.strip() == "written", written.stderr
    inspected = json.loads(cli.on("node2", "inspect", container).stdout)[0]
    assert inspected["HostConfig"]["Devices"] == [
        {"PathOnHost": str(device), "PathInContainer": "/dev/isgx", "CgroupPermissions": "rwm"}
    ]
    assert inspected["Mounts"] == []


STACK = "sgxstack"
STACK_FILE = f"""\
version: "3.8"
services:
  enclave:
    image: {IMAGE}
    command: {json.dumps(SERVE)}
    stop_grace_period: 1s
    deploy:
      replicas: 2
      resources:
        reservations:
          generic_resources:
            - discrete_resource_spec:
                kind: sgx
                value: 1
"""


def nodes_running(cli: Cli, service: str, count: int) -> list[str]:
    def settled() -> list[str]:
        tasks = running_tasks(cli, service)
        return sorted(task["NodeID"] for task in tasks) if len(tasks) == count else []

    return eventually(settled, what=f"{count} tasks of {service} running")  # type: ignore[no-any-return]


def test_the_tutorials_commands_with_a_generic_resource_place_only_on_sgx_hosts(
    cli: Cli, node2: Restart, device: Path, tmp_path: Path
) -> None:
    node2(["--node-device", f"sgx={device}:/dev/isgx", "--node-generic-resource", "sgx=2"], sgx(2))
    node2_id = cli.node_id("node2")
    # The first tutorial's commands, with --generic-resource sgx=1 added.
    cli.ok("node", "update", "--label-add", "sgx=1", "node2")
    try:
        cli.create(
            "ha",
            "-p",
            "80:80",
            "--constraint",
            "node.labels.sgx == 1",
            "--replicas=2",
            "--generic-resource",
            "sgx=1",
            *QUICK_STOP,
            IMAGE,
            *SERVE,
        )
        assert nodes_running(cli, "ha", 2) == [node2_id, node2_id]
        for task in running_tasks(cli, "ha"):
            container = task["Status"]["ContainerStatus"]["ContainerID"]
            assert cli.on("node2", "exec", container, *WRITE).stdout.strip() == "written"
        cli.ok("service", "rm", "ha")
    finally:
        cli.ok("node", "update", "--label-rm", "sgx", "node2")

    # A stack file reserving it, with no constraint at all: only node2 has sgx.
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text(STACK_FILE)
    cli.services.append(f"{STACK}_enclave")
    try:
        cli.ok("stack", "deploy", "-c", str(stack_file), STACK, timeout=180)
        spec = cli.inspect("service", f"{STACK}_enclave")["Spec"]["TaskTemplate"]
        assert spec["Resources"]["Reservations"]["GenericResources"] == sgx(1)
        assert nodes_running(cli, f"{STACK}_enclave", 2) == [node2_id, node2_id]
    finally:
        cli("stack", "rm", STACK)
        eventually(
            lambda: cli.ok("network", "ls", "-q", "--filter", f"name={STACK}_") == "",
            what="the stack's network removed",
        )


def test_bad_input_a_resource_no_node_has_and_a_path_that_is_no_device(
    cli: Cli, lab: Lab, node2: Restart, tmp_path: Path
) -> None:
    cli.create("fpga", "--generic-resource", "fpga=1", *QUICK_STOP, IMAGE, *SERVE)
    assert pending_error(cli, "fpga") == NO_SUITABLE_NODE
    assert cli.ok("ps", "-aq", "--filter", "label=com.docker.swarm.service.name=fpga") == ""

    # swarmletd refuses to start on a device path that is not a device (exit 2, its message).
    not_a_device = tmp_path / "isgx"
    not_a_device.write_text("")
    lab.stop("node2")
    with pytest.raises(LabError) as caught:
        lab.start("node2", extra_args=["--node-device", f"sgx={not_a_device}"])
    assert f"--node-device sgx: {not_a_device} is not a character or block device" in str(
        caught.value
    )
    # The fixture starts node2 again as it was.
