"""A host's devices behind generic resources: the daemon's flags, SGX found at start, and what a
task's container gets (env, devices, bound device nodes as devices)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from swarmlet.agent import executor
from swarmlet.agent.devices import (
    DeviceError,
    DeviceMapping,
    NodeDevices,
    is_device_node,
    node_devices,
    parse_device_flag,
    probe_sgx,
    with_devices,
)
from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.clock import FakeClock
from swarmlet.genericresource import discrete, named
from swarmlet.models import GenericResource, Task
from tests.agent.conftest import Pump, TaskFactory, running

SGX = NodeDevices(
    (discrete("sgx", 1),),
    {"sgx": (DeviceMapping("/dev/sgx_enclave", "/dev/sgx_enclave"),)},
)


def devices_at(*paths: str) -> Any:
    """A stat stand-in: these paths are device nodes, nothing else is."""
    return lambda path: path in paths


def null_device(path: Path) -> Path:
    """A character device with /dev/null's numbers (1, 3)."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


def test_the_flag_is_a_name_and_devices_each_with_an_optional_path_in_the_container() -> None:
    assert parse_device_flag("sgx=/dev/isgx") == ("sgx", (DeviceMapping("/dev/isgx", "/dev/isgx"),))
    assert parse_device_flag("sgx=/tmp/d/isgx:/dev/isgx,/dev/sgx_provision") == (
        "sgx",
        (
            DeviceMapping("/tmp/d/isgx", "/dev/isgx"),
            DeviceMapping("/dev/sgx_provision", "/dev/sgx_provision"),
        ),
    )


@pytest.mark.parametrize(
    "value", ["sgx", "=/dev/isgx", "sgx=", "sgx=dev/isgx", "sgx=/dev/a:rel", "sgx=/dev/a:/b:rwm"]
)
def test_a_malformed_flag_is_refused(value: str) -> None:
    with pytest.raises(DeviceError, match=f"^invalid node-device `{value}`, expected `name="):
        parse_device_flag(value)


def test_a_device_kind_is_advertised_as_the_generic_resource_flag_says_else_as_one() -> None:
    flags = [parse_device_flag("sgx=/dev/isgx"), parse_device_flag("fpga=/dev/fpga0")]
    found = node_devices(
        ["sgx=4"], flags, sgx_paths=(), is_device=devices_at("/dev/isgx", "/dev/fpga0")
    )
    assert found.generic == (discrete("sgx", 4), discrete("fpga", 1))
    assert found.devices == {
        "sgx": (DeviceMapping("/dev/isgx", "/dev/isgx"),),
        "fpga": (DeviceMapping("/dev/fpga0", "/dev/fpga0"),),
    }
    # Without devices, the flag alone: dockerd's --node-generic-resource.
    plain = node_devices(["gpu=UUID1", "gpu=UUID2"], [], sgx_paths=(), is_device=devices_at())
    assert plain == NodeDevices((named("gpu", "UUID1"), named("gpu", "UUID2")), {})


def test_a_path_that_is_not_a_device_is_refused(tmp_path: Path) -> None:
    regular = tmp_path / "isgx"
    regular.write_text("")
    for path in (regular, tmp_path / "missing"):
        with pytest.raises(DeviceError) as caught:
            node_devices([], [parse_device_flag(f"sgx={path}")], sgx_paths=())
        assert str(caught.value) == (
            f"--node-device sgx: {path} is not a character or block device"
        )


def test_the_generic_resource_flag_is_parsed_as_dockerd_does() -> None:
    with pytest.raises(DeviceError, match="mixed discrete and named resources in expression"):
        node_devices(["gpu=a", "gpu=1"], [], sgx_paths=())


def test_sgx_devices_found_at_start_are_advertised_as_sgx(tmp_path: Path) -> None:
    (tmp_path / "sgx").mkdir()
    enclave = null_device(tmp_path / "sgx_enclave")
    provision = null_device(tmp_path / "sgx_provision")
    (tmp_path / "sgx" / "enclave").symlink_to(enclave)
    (tmp_path / "isgx").write_text("not a device")
    paths = [
        str(tmp_path / name) for name in ("isgx", "sgx_enclave", "sgx/enclave", "sgx_provision")
    ]
    assert is_device_node(str(enclave))
    found = node_devices([], [], sgx_paths=paths)
    assert found.generic == (discrete("sgx", 1),)
    assert found.devices["sgx"] == tuple(DeviceMapping(path, path) for path in paths[1:])
    assert probe_sgx(paths[:1]) == ()
    # --node-device sgx=... says which devices; a count from --node-generic-resource.
    chosen = node_devices(
        ["sgx=3"], [parse_device_flag(f"sgx={provision}:/dev/x")], sgx_paths=paths
    )
    assert chosen.generic == (discrete("sgx", 3),)
    assert chosen.devices == {"sgx": (DeviceMapping(str(provision), "/dev/x"),)}


def given(task: Task, *resources: GenericResource) -> Task:
    return task.replace(assigned_generic_resources=list(resources))


def plan(task: Task, node: NodeDevices = SGX, **kwargs: Any) -> executor.ContainerPlan:
    return with_devices(executor.plan_container(task, "node1", {}), task, node, **kwargs)


def test_a_task_given_a_kind_gets_its_env_after_the_specs_and_its_devices(
    make_task: TaskFactory,
) -> None:
    task = given(make_task(env=["A=1"]), discrete("sgx", 1), named("gpu", "UUID1"))
    made = plan(task)
    assert made.config["Env"] == ["A=1", "DOCKER_RESOURCE_SGX=1", "DOCKER_RESOURCE_GPU=UUID1"]
    assert made.host_config["Devices"] == [
        {
            "PathOnHost": "/dev/sgx_enclave",
            "PathInContainer": "/dev/sgx_enclave",
            "CgroupPermissions": "rwm",
        }
    ]


def test_a_task_given_nothing_gets_nothing(make_task: TaskFactory) -> None:
    task = make_task(env=["A=1"])
    assert plan(task) == executor.plan_container(task, "node1", {})
    # A kind without devices: its env only.
    made = plan(given(task, discrete("ssd", 2)))
    assert made.config["Env"] == ["A=1", "DOCKER_RESOURCE_SSD=2"]
    assert "Devices" not in made.host_config


def test_a_bound_device_node_becomes_a_device(make_task: TaskFactory) -> None:
    mounts = [
        {"Type": "bind", "Source": "/tmp/d/isgx", "Target": "/dev/isgx"},
        {"Type": "bind", "Source": "/tmp/d/ro", "Target": "/dev/ro", "ReadOnly": True},
        {"Type": "bind", "Source": "/srv/data", "Target": "/data"},
        {"Type": "volume", "Source": "/tmp/d/isgx", "Target": "/v"},
    ]
    task = make_task(mounts=mounts)
    made = plan(task, is_device=devices_at("/tmp/d/isgx", "/tmp/d/ro"))
    assert made.host_config["Devices"] == [
        {"PathOnHost": "/tmp/d/isgx", "PathInContainer": "/dev/isgx", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/tmp/d/ro", "PathInContainer": "/dev/ro", "CgroupPermissions": "r"},
    ]
    assert made.host_config["Mounts"] == [mounts[2], mounts[3]]
    only = plan(make_task(mounts=mounts[:1]), is_device=devices_at("/tmp/d/isgx"))
    assert "Mounts" not in only.host_config


async def test_the_container_is_created_with_them(
    make_task: TaskFactory, clock: FakeClock, pump: Pump
) -> None:
    engine = FakeEngine(clock)
    engine.add_image("busybox")
    task = given(make_task(), discrete("sgx", 1))
    async with running(task, engine=engine, clock=clock, devices=SGX):
        await pump()
        (container,) = engine.containers.values()
    assert container.config["Env"] == ["DOCKER_RESOURCE_SGX=1"]
    assert container.host_config["Devices"] == [
        {
            "PathOnHost": "/dev/sgx_enclave",
            "PathInContainer": "/dev/sgx_enclave",
            "CgroupPermissions": "rwm",
        }
    ]
