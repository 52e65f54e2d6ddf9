"""A task's network namespace: the sandbox container that holds it, and the task's interfaces.

The sandbox is a tiny container with ``NetworkMode: none`` whose only job is to hold the task's
network namespace: the host puts the task's interfaces in it while it sleeps, and the task's
own container then joins it (``NetworkMode: container:<sandbox>``), so the network is ready
before the task's process starts. A container joining another's namespace also takes its
hostname and resolv.conf, so the sandbox carries both.

For attachment *i* of a task (in order) the host makes a veth pair: the host side
``swlv<task id[:9]><i>`` on the network's bridge, up; the other side made straight in the
sandbox's namespace as ``eth<i>``, with the MAC derived from its address, the address, MTU
1450, up. ``lo`` comes up, and the default route goes via the host's own address on the
*first* network (the allocator puts ``ingress`` first when the service publishes ports, so the
replies of routing-mesh connections go back through the local host). That address is also the
task's nameserver (the embedded DNS listens on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from swarmlet.agent.engine import ContainerInfo
from swarmlet.agent.executor import container_name
from swarmlet.errors import EngineError, InvalidSpec, NotFound, Unavailable
from swarmlet.models import Task
from swarmlet.net.names import (
    bridge_name,
    host_veth_name,
    ip_of,
    mac_for,
    task_interface_name,
)
from swarmlet.net.netlink import in_netns, index_of, netlink_errors, tolerating
from swarmlet.net.overlay import OVERLAY_MTU
from swarmlet.net.rtnetlink import AF_BRIDGE, NTF_MASTER, NUD_NOARP, Rtnetlink, VethPeer

log = logging.getLogger(__name__)

SANDBOX_REPO = "swarmlet/sandbox"
SANDBOX_TAG = "1"
SANDBOX_IMAGE = f"{SANDBOX_REPO}:{SANDBOX_TAG}"
SANDBOX_LABEL = "com.swarmlet.sandbox"
# Debian's busybox-static: one static binary, all the image holds.
BUSYBOX = Path("/bin/busybox")
SANDBOX_COMMAND = ["/bin/busybox", "sleep", "2147483647"]


# -- the plan (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInterface:
    """One veth pair of a task: ``host_name`` on ``bridge``, ``name`` in the task."""

    host_name: str
    bridge: str
    name: str
    mac: str | None
    address: str | None  # CIDR; None when the attachment has no address
    mtu: int = OVERLAY_MTU


@dataclass(frozen=True)
class TaskNetPlan:
    interfaces: tuple[TaskInterface, ...]
    # The default route's gateway, in the task's namespace.
    gateway: str


def host_address_on_first_network(task: Task, local_addresses: Mapping[str, str]) -> str:
    """The host's own address (no prefix) on the task's first network: its gateway and its
    nameserver. ``Unavailable`` while the host has none yet (the manager has not sent it)."""
    if not task.networks_attachments:
        raise InvalidSpec(f"task {task.id} has no network attachment")
    network = task.networks_attachments[0].network
    address = local_addresses.get(network.id, "")
    if not address:
        raise Unavailable(f"this host has no address on network {network.name or network.id} yet")
    return ip_of(address)


def plan_attachment(task: Task, local_addresses: Mapping[str, str]) -> TaskNetPlan:
    interfaces = []
    for index, attachment in enumerate(task.networks_attachments):
        address = attachment.addresses[0] if attachment.addresses else None
        interfaces.append(
            TaskInterface(
                host_name=host_veth_name(task.id, index),
                bridge=bridge_name(attachment.network.vni),
                name=task_interface_name(index),
                mac=mac_for(address) if address else None,
                address=address,
            )
        )
    return TaskNetPlan(tuple(interfaces), host_address_on_first_network(task, local_addresses))


def resolv_conf(task: Task, local_addresses: Mapping[str, str]) -> str:
    """The task's resolv.conf: the embedded DNS on the host's address on its first network.
    ``ndots:0``: every name is tried as it is first (``tasks.web`` has a dot)."""
    return f"nameserver {host_address_on_first_network(task, local_addresses)}\noptions ndots:0\n"


# -- attaching (the driver) -----------------------------------------------------------------


async def attach_task(task: Task, netns_pid: int, local_addresses: Mapping[str, str]) -> None:
    """Give the namespace of process ``netns_pid`` the task's interfaces, addresses and default
    route. Made over again if an earlier attempt left some of it. ``Unavailable`` when a
    network's bridge is not on this host yet (its network state has not been programmed)."""
    plan = plan_attachment(task, local_addresses)
    await asyncio.to_thread(_attach, plan, netns_pid)


async def detach_task(task: Task) -> None:
    """Remove the host sides of the task's veths (their peers go with them). Idempotent: a
    sandbox that is gone took its veths with it already."""
    names = [host_veth_name(task.id, i) for i in range(len(task.networks_attachments))]
    await asyncio.to_thread(_delete_links, names)


def _attach(plan: TaskNetPlan, pid: int) -> None:
    with netlink_errors("opening netlink"), Rtnetlink() as rtnl:
        for interface in plan.interfaces:
            _make_veth(rtnl, interface, pid)
    with netlink_errors(f"configuring the namespace of process {pid}"):
        in_netns(f"/proc/{pid}/ns/net", lambda: _configure_inside(plan))


def _make_veth(rtnl: Rtnetlink, interface: TaskInterface, pid: int) -> None:
    try:
        bridge = index_of(rtnl, interface.bridge)
    except NotFound:
        raise Unavailable(f"the bridge {interface.bridge} is not on this host yet") from None
    what = f"making {interface.host_name} for {interface.name} of process {pid}"
    with netlink_errors(what):
        _delete_link(rtnl, interface.host_name)
        peer = VethPeer(interface.name, pid, interface.mtu, interface.mac or None)
        rtnl.add_link(interface.host_name, "veth", mtu=interface.mtu, mac=None, peer=peer)
        veth = index_of(rtnl, interface.host_name)
        rtnl.set_link(veth, master=bridge, up=True)
        if interface.mac:
            # The task's MAC is its address's: a task that had the address before, on another
            # host, left the bridge believing that MAC lives behind the VXLAN port, and it
            # would keep believing so (for minutes) until the new task sent a frame — which
            # it never does if nothing reaches it. Pin the MAC to its port:
            # ``bridge fdb replace ... master static``, an entry in the bridge's table (not
            # the port's own) that does not age.
            rtnl.set_neighbour(
                AF_BRIDGE, veth, lladdr=interface.mac, state=NUD_NOARP, flags=NTF_MASTER
            )


def _configure_inside(plan: TaskNetPlan) -> None:
    """In the task's namespace (see ``in_netns``)."""
    with Rtnetlink() as rtnl:
        rtnl.set_link(index_of(rtnl, "lo"), up=True)
        for interface in plan.interfaces:
            index = index_of(rtnl, interface.name)
            if interface.address:
                address, _, prefix = interface.address.partition("/")
                with tolerating(errno.EEXIST):
                    rtnl.add_address(index, address, int(prefix or 32))
            rtnl.set_link(index, up=True)
        rtnl.replace_default_route(plan.gateway)


def _delete_link(rtnl: Rtnetlink, name: str) -> None:
    with tolerating(errno.ENODEV):
        index = rtnl.link_index(name)
        if index is not None:
            rtnl.delete_link(index)


def _delete_links(names: Sequence[str]) -> None:
    with netlink_errors("removing a task's interfaces"), Rtnetlink() as rtnl:
        for name in names:
            _delete_link(rtnl, name)


# -- the sandbox container ------------------------------------------------------------------


class SandboxEngine(Protocol):
    """The engine calls the sandbox needs (``EngineClient`` has them all)."""

    async def inspect_image(self, ref: str) -> dict[str, Any]: ...

    async def import_image(
        self, source: bytes, repo: str, tag: str, changes: Sequence[str] = ()
    ) -> None: ...

    async def create_container(
        self, name: str, config: Mapping[str, Any], host_config: Mapping[str, Any]
    ) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def inspect_container(self, container_id: str) -> ContainerInfo: ...

    async def remove_container(self, container_id: str, force: bool = True) -> None: ...


@dataclass(frozen=True)
class SandboxPlan:
    name: str
    config: dict[str, Any]
    host_config: dict[str, Any]


def sandbox_name(task: Task) -> str:
    return f"{container_name(task)}.sandbox"


def plan_sandbox(
    task: Task, labels: Mapping[str, str], nameserver: str | None = None
) -> SandboxPlan:
    """The sandbox's create request. ``nameserver``: the task's resolver (see
    ``host_address_on_first_network``); the task's container shares the sandbox's
    resolv.conf and hostname, and may set neither itself."""
    config: dict[str, Any] = {
        "Image": SANDBOX_IMAGE,
        "Cmd": SANDBOX_COMMAND,
        "Labels": {**labels, SANDBOX_LABEL: "1"},
        # It has nothing to save: a stop need not wait for a grace period.
        "StopSignal": "SIGKILL",
    }
    hostname = task.spec.container_spec.hostname
    if hostname:
        config["Hostname"] = hostname
    host_config: dict[str, Any] = {"NetworkMode": "none"}
    if nameserver:
        host_config["Dns"] = [nameserver]
        host_config["DnsOptions"] = ["ndots:0"]
    return SandboxPlan(sandbox_name(task), config, host_config)


def sandbox_image_tar(busybox: Path = BUSYBOX) -> bytes:
    """The sandbox image's root filesystem: ``/bin/busybox`` and nothing else."""
    import tarfile  # once, for an engine without the image: not for every worker's memory

    data = busybox.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("bin")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        binary = tarfile.TarInfo("bin/busybox")
        binary.size = len(data)
        binary.mode = 0o755
        tar.addfile(binary, io.BytesIO(data))
    return buffer.getvalue()


async def ensure_sandbox_image(
    engine: SandboxEngine, repo: str = SANDBOX_REPO, tag: str = SANDBOX_TAG
) -> None:
    """Import the sandbox image unless the engine has it (no registry needed)."""
    try:
        await engine.inspect_image(f"{repo}:{tag}")
        return
    except NotFound:
        pass
    try:
        source = await asyncio.to_thread(sandbox_image_tar)
    except OSError as exc:
        raise Unavailable(f"cannot build the sandbox image from {BUSYBOX}: {exc}") from exc
    log.info("importing the sandbox image %s:%s", repo, tag)
    await engine.import_image(source, repo, tag, [f"CMD {json.dumps(SANDBOX_COMMAND)}"])


async def start_sandbox(
    engine: SandboxEngine,
    task: Task,
    labels: Mapping[str, str],
    nameserver: str | None = None,
) -> ContainerInfo:
    """Create and start the task's sandbox (its image built first if missing); returns it
    running, its ``pid`` the holder of the namespace to attach. A sandbox an earlier attempt
    left under the same name is removed first."""
    await ensure_sandbox_image(engine)
    plan = plan_sandbox(task, labels, nameserver)
    try:
        container_id = await engine.create_container(plan.name, plan.config, plan.host_config)
    except EngineError as exc:
        if exc.status != 409:
            raise
        await engine.remove_container(plan.name, force=True)
        container_id = await engine.create_container(plan.name, plan.config, plan.host_config)
    await engine.start_container(container_id)
    info = await engine.inspect_container(container_id)
    if not info.running or info.pid <= 0:
        raise EngineError(f"sandbox {plan.name} is not running ({info.state}): {info.error}", 500)
    return info


async def remove_sandbox(engine: SandboxEngine, task: Task) -> None:
    """Remove the task's sandbox, running or not; nothing to do if there is none."""
    with contextlib.suppress(NotFound):
        await engine.remove_container(sandbox_name(task), force=True)
