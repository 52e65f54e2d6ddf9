"""A host's devices behind its generic resources, and what a task's container gets of them.

Swarm cannot give a service a device (swarmkit#1244, moby#24862). Here a host's daemon is told
which device nodes stand behind a generic resource (``--node-device sgx=/dev/isgx``), or finds
SGX's at start, and advertises the resource. The scheduler places a task that reserves it only
where it is free (``--generic-resource sgx=1``); the task's container then gets those devices
with the cgroup permission to use them, and ``DOCKER_RESOURCE_SGX`` as Swarm sets it. A task
that reserves nothing gets no device. A ``--mount type=bind`` whose source is a character or
block device becomes a device mapping too: on Swarm the node appears, but the devices cgroup
refuses to open it.

Planning is pure (``node_devices``, ``with_devices``); the only I/O is the stat of a path
(``is_device_node``), injected where it is used so that tests can fake it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from swarmlet import genericresource
from swarmlet.agent.executor import ContainerPlan
from swarmlet.models import GenericResource, Task

SGX_KIND = "sgx"
# The SGX device nodes: the out-of-tree driver's, and the kernel's (5.11 on) with its
# provisioning device. /dev/sgx/enclave is the kernel's udev link to /dev/sgx_enclave.
SGX_DEVICE_PATHS = ("/dev/isgx", "/dev/sgx_enclave", "/dev/sgx/enclave", "/dev/sgx_provision")
# Read, write and mknod: docker run --device's default.
ALL_PERMISSIONS = "rwm"
# A device bound read-only (``--mount ...,readonly``) may only be read.
READ_ONLY_PERMISSIONS = "r"
DEVICE_FLAG_FORMAT = "expected `name=/dev/path[:/path/in/container][,/dev/other...]`"

IsDevice = Callable[[str], bool]


@dataclass(frozen=True)
class DeviceMapping:
    """One of ``HostConfig.Devices``."""

    path_on_host: str
    path_in_container: str
    permissions: str = ALL_PERMISSIONS

    def to_api(self) -> dict[str, str]:
        return {
            "PathOnHost": self.path_on_host,
            "PathInContainer": self.path_in_container,
            "CgroupPermissions": self.permissions,
        }


@dataclass(frozen=True)
class NodeDevices:
    """What the node advertises beyond CPUs and memory, and the devices behind each kind."""

    generic: tuple[GenericResource, ...] = ()
    devices: Mapping[str, tuple[DeviceMapping, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )


NO_DEVICES = NodeDevices()


class DeviceError(ValueError):
    """A ``--node-device`` or ``--node-generic-resource`` swarmletd refuses at start."""


# -- the driver: the stat of a path ---------------------------------------------------------


def is_device_node(path: str) -> bool:
    """Whether ``path`` is a character or block device (symbolic links followed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


# -- the daemon's flags ---------------------------------------------------------------------


def parse_device_flag(value: str) -> tuple[str, tuple[DeviceMapping, ...]]:
    """``NAME=/dev/a[:/in/container][,/dev/b...]``: the kind and its device mappings (each at
    the host's path in the container unless another is given)."""
    kind, sep, paths = value.partition("=")
    kind = kind.strip()
    if not sep or not kind or not paths.strip():
        raise DeviceError(f"invalid node-device `{value}`, {DEVICE_FLAG_FORMAT}")
    mappings: list[DeviceMapping] = []
    for item in paths.split(","):
        host, _, container = item.strip().partition(":")
        container = container or host
        if not host.startswith("/") or not container.startswith("/") or ":" in container:
            raise DeviceError(f"invalid node-device `{value}`, {DEVICE_FLAG_FORMAT}")
        mappings.append(DeviceMapping(host, container))
    return kind, tuple(mappings)


def probe_sgx(
    paths: Sequence[str] = SGX_DEVICE_PATHS, is_device: IsDevice = is_device_node
) -> tuple[DeviceMapping, ...]:
    """The SGX device nodes this host has, each at its own path in a container."""
    return tuple(DeviceMapping(path, path) for path in paths if is_device(path))


def node_devices(
    generic_flags: Sequence[str],
    device_flags: Sequence[tuple[str, tuple[DeviceMapping, ...]]],
    *,
    sgx_paths: Sequence[str] = SGX_DEVICE_PATHS,
    is_device: IsDevice = is_device_node,
) -> NodeDevices:
    """What the node advertises: ``--node-generic-resource`` as dockerd parses it, then each
    kind with devices (``--node-device``, or SGX's found at ``sgx_paths``) that it does not
    name, as one discrete unit. Raises DeviceError for a value dockerd would refuse or a
    device path that is not a character or block device."""
    try:
        generic = genericresource.parse(generic_flags)
    except genericresource.ParseError as exc:
        raise DeviceError(str(exc)) from None
    devices: dict[str, tuple[DeviceMapping, ...]] = {}
    for kind, mappings in device_flags:
        for mapping in mappings:
            if not is_device(mapping.path_on_host):
                raise DeviceError(
                    f"--node-device {kind}: {mapping.path_on_host} is not a character or block"
                    " device"
                )
        devices[kind] = devices.get(kind, ()) + mappings
    if SGX_KIND not in devices:
        found = probe_sgx(sgx_paths, is_device)
        if found:
            devices[SGX_KIND] = found
    named = {resource.kind for resource in generic}
    generic += [genericresource.discrete(kind, 1) for kind in devices if kind not in named]
    return NodeDevices(tuple(generic), MappingProxyType(devices))


# -- a task's container ---------------------------------------------------------------------


def _kinds(assigned: Iterable[GenericResource]) -> list[str]:
    return list(dict.fromkeys(resource.kind for resource in assigned))


def with_devices(
    plan: ContainerPlan,
    task: Task,
    node: NodeDevices = NO_DEVICES,
    *,
    is_device: IsDevice = is_device_node,
) -> ContainerPlan:
    """The plan with what the task's generic resources give it: ``DOCKER_RESOURCE_<KIND>``
    after the spec's env (moby's executor), and the devices behind each kind it was given;
    and with each bind mount of a device node made a device mapping (``r`` only when the
    mount is read-only)."""
    assigned = task.assigned_generic_resources or []
    env = genericresource.env(assigned)
    devices = [m.to_api() for kind in _kinds(assigned) for m in node.devices.get(kind, ())]
    mounts: list[dict[str, Any]] = list(plan.host_config.get("Mounts") or [])
    kept: list[dict[str, Any]] = []
    for mount in mounts:
        source = mount.get("Source")
        if mount.get("Type", "bind") == "bind" and isinstance(source, str) and is_device(source):
            read_only = bool(mount.get("ReadOnly"))
            permissions = READ_ONLY_PERMISSIONS if read_only else ALL_PERMISSIONS
            devices.append(DeviceMapping(source, str(mount.get("Target")), permissions).to_api())
        else:
            kept.append(mount)
    if not env and not devices:
        return plan
    config, host_config = dict(plan.config), dict(plan.host_config)
    if env:
        config["Env"] = [*(config.get("Env") or []), *env]
    if devices:
        host_config["Devices"] = [*(host_config.get("Devices") or []), *devices]
        if len(kept) != len(mounts):
            if kept:
                host_config["Mounts"] = kept
            else:
                host_config.pop("Mounts", None)
    return replace(plan, config=config, host_config=host_config)
