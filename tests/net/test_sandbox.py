"""A task's sandbox and interfaces: the plans with plain objects, then the sandbox container on
the machine's real engine (``SWARMLET_TEST_DOCKER_HOST``, else the default socket), attached
to a host namespace made here. Without an engine (or root, for the namespace) those skip,
except under ``CI=true``, where they fail. What they make is removed after them.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmlet.errors import InvalidSpec, NotFound, Unavailable
from swarmlet.ids import new_id
from swarmlet.models import (
    ContainerSpec,
    IPAMConfig,
    Network,
    NetworkAttachment,
    NetworkIPAM,
    Task,
    TaskSpec,
)
from swarmlet.net.names import bridge_name, host_veth_name, mac_for, vxlan_name
from swarmlet.net.sandbox import (
    SANDBOX_IMAGE,
    SANDBOX_LABEL,
    TaskInterface,
    ensure_sandbox_image,
    plan_attachment,
    plan_sandbox,
    remove_sandbox,
    resolv_conf,
    sandbox_image_tar,
    start_sandbox,
)
from swarmlet.protocol import NetworkView
from tests.conftest import TEST_LABEL
from tests.net.dataplane_lab import HELPER, PREFIX, fail_or_skip, require_kernel, sh

TEST_IMAGE = "swarmlet-test/busybox:latest"


def network(vni: int, name: str, subnet: str) -> Network:
    return Network(
        id=f"id-{name}", name=name, vni=vni, ipam=NetworkIPAM(config=[IPAMConfig(subnet=subnet)])
    )


INGRESS = network(4096, "ingress", "10.0.0.0/24")
BACKEND = network(4097, "backend", "10.0.1.0/24")
HOST_ADDRESSES = {INGRESS.id: "10.0.0.2/24", BACKEND.id: "10.0.1.2/24"}


def task(*attachments: tuple[Network, str], hostname: str | None = None) -> Task:
    return Task(
        id="abcdefghijklmnopqrstuvwxy",
        name="web.1",
        service_id="web",
        service_name="web",
        spec=TaskSpec(container_spec=ContainerSpec(image="busybox", hostname=hostname)),
        networks_attachments=[
            NetworkAttachment(network=net, addresses=[address]) for net, address in attachments
        ],
    )


# -- plans ----------------------------------------------------------------------------------


def test_one_interface_per_attachment_in_order_routed_via_the_first_network():
    plan = plan_attachment(task((INGRESS, "10.0.0.7/24"), (BACKEND, "10.0.1.9/24")), HOST_ADDRESSES)
    assert plan.interfaces == (
        TaskInterface("swlvabcdefghi0", "swlbr4096", "eth0", "02:42:0a:00:00:07", "10.0.0.7/24"),
        TaskInterface("swlvabcdefghi1", "swlbr4097", "eth1", "02:42:0a:00:01:09", "10.0.1.9/24"),
    )
    assert plan.gateway == "10.0.0.2"


def test_the_resolver_is_the_host_on_the_first_network():
    the_task = task((BACKEND, "10.0.1.9/24"), (INGRESS, "10.0.0.7/24"))
    assert resolv_conf(the_task, HOST_ADDRESSES) == "nameserver 10.0.1.2\noptions ndots:0\n"


def test_without_the_hosts_address_a_task_cannot_be_attached_yet():
    with pytest.raises(Unavailable, match="no address on network backend"):
        plan_attachment(task((BACKEND, "10.0.1.9/24")), {INGRESS.id: "10.0.0.2/24"})
    with pytest.raises(InvalidSpec):
        resolv_conf(task(), HOST_ADDRESSES)


def test_the_sandbox_holds_the_network_the_hostname_and_the_resolver():
    plan = plan_sandbox(task((BACKEND, "10.0.1.9/24"), hostname="api"), {"a": "b"}, "10.0.1.2")
    assert plan.name == "web.1.abcdefghijklmnopqrstuvwxy.sandbox"
    assert plan.config["Image"] == SANDBOX_IMAGE
    assert plan.config["Cmd"] == ["/bin/busybox", "sleep", "2147483647"]
    assert plan.config["Labels"] == {"a": "b", SANDBOX_LABEL: "1"}
    assert plan.config["Hostname"] == "api"
    assert plan.host_config == {
        "NetworkMode": "none",
        "Dns": ["10.0.1.2"],
        "DnsOptions": ["ndots:0"],
    }
    assert "Dns" not in plan_sandbox(task(), {}).host_config


def test_the_sandbox_image_is_busybox_alone(tmp_path: Path):
    binary = tmp_path / "busybox"
    binary.write_bytes(b"\x7fELF not really")
    with tarfile.open(fileobj=io.BytesIO(sandbox_image_tar(binary))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["bin", "bin/busybox"]
        assert members["bin"].isdir()
        assert members["bin/busybox"].mode == 0o755
        assert tar.extractfile("bin/busybox").read() == b"\x7fELF not really"  # type: ignore[union-attr]


# -- the real engine ------------------------------------------------------------------------


@pytest.fixture
def host_netns() -> Iterator[str]:
    """A host namespace with network ``backend`` programmed, its address 10.0.1.2."""
    require_kernel()
    name = f"{PREFIX}{uuid.uuid4().hex[:6]}-h"
    sh("ip", "netns", "add", name)
    try:
        view = NetworkView(
            id=BACKEND.id,
            name=BACKEND.name,
            vni=BACKEND.vni,
            subnet=BACKEND.subnet,
            local_address="10.0.1.2/24",
        )
        args = json.dumps({"views": [view.model_dump()], "host_addr": "192.168.77.1"})
        sh("nsenter", f"--net=/run/netns/{name}", sys.executable, HELPER, "program", args)
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def links_of(pid: int) -> list[str]:
    shown = sh("nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "link").stdout
    return sorted(link["ifname"] for link in json.loads(shown))


async def test_a_sandbox_holds_a_namespace_of_its_own_until_removed(docker, test_labels):
    the_task = task((BACKEND, "10.0.1.9/24"), hostname="api").replace(id=new_id())
    sandbox = await start_sandbox(docker, the_task, test_labels, nameserver="10.0.1.2")
    assert sandbox.running
    assert sandbox.labels[SANDBOX_LABEL] == "1"
    assert sandbox.labels[TEST_LABEL] == test_labels[TEST_LABEL]
    assert os.readlink(f"/proc/{sandbox.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert links_of(sandbox.pid) == ["lo"]
    shown = sh("docker", "inspect", sandbox.id).stdout
    assert json.loads(shown)[0]["HostConfig"]["NetworkMode"] == "none"
    resolv = sh("docker", "exec", sandbox.id, "/bin/busybox", "cat", "/etc/resolv.conf").stdout
    assert resolv.splitlines() == ["nameserver 10.0.1.2", "options ndots:0"]
    assert sh("docker", "exec", sandbox.id, "/bin/busybox", "hostname").stdout.strip() == "api"

    # One an earlier attempt left is replaced.
    again = await start_sandbox(docker, the_task, test_labels)
    assert again.id != sandbox.id
    with pytest.raises(NotFound):
        await docker.inspect_container(sandbox.id)

    await remove_sandbox(docker, the_task)
    with pytest.raises(NotFound):
        await docker.inspect_container(again.id)
    await remove_sandbox(docker, the_task)  # nothing left: nothing to do


async def test_the_sandbox_image_is_imported_when_missing(docker):
    tag = uuid.uuid4().hex[:8]
    ref = f"swarmlet-test/sandbox:{tag}"
    try:
        await ensure_sandbox_image(docker, "swarmlet-test/sandbox", tag)
        image = await docker.inspect_image(ref)
        assert image["Config"]["Cmd"] == ["/bin/busybox", "sleep", "2147483647"]
        await ensure_sandbox_image(docker, "swarmlet-test/sandbox", tag)  # there: nothing to do
    finally:
        await asyncio.to_thread(sh, "docker", "rmi", ref, check=False)


async def test_a_task_joining_the_sandbox_has_its_network(docker, test_labels, host_netns):
    try:
        await docker.inspect_image(TEST_IMAGE)
    except NotFound:
        fail_or_skip(f"no image {TEST_IMAGE} (scripts/bootstrap.sh makes it)")
    the_task = task((BACKEND, "10.0.1.9/24")).replace(id=new_id())
    # A task that had 10.0.1.9 on another host left the bridge sure that its MAC lives behind
    # the VXLAN port (learned; here, static so that it does not age during the test).
    mac, bridge = mac_for("10.0.1.9"), bridge_name(BACKEND.vni)
    in_host = ("nsenter", f"--net=/run/netns/{host_netns}")
    sh(*in_host, "bridge", "fdb", "add", mac, "dev", vxlan_name(BACKEND.vni), "master", "static")
    sandbox = await start_sandbox(docker, the_task, test_labels, nameserver="10.0.1.2")
    args = {
        "task": the_task.model_dump(mode="json", by_alias=True),
        "pid": sandbox.pid,
        "local_addresses": {BACKEND.id: "10.0.1.2/24"},
    }
    sh(
        "nsenter",
        f"--net=/run/netns/{host_netns}",
        sys.executable,
        HELPER,
        "attach",
        json.dumps(args),
    )
    assert links_of(sandbox.pid) == ["eth0", "lo"]
    # The new task's port has its MAC now, whatever the bridge believed.
    entries = sh(*in_host, "bridge", "fdb", "show", "br", bridge).stdout.splitlines()
    assert [e.split()[2] for e in entries if e.startswith(mac)] == [host_veth_name(the_task.id, 0)]

    # The task's container: in the sandbox's namespace, it reaches the host over eth0.
    command = "ip -o -4 addr show eth0 && ping -c 1 -W 2 10.0.1.2"
    container = await docker.create_container(
        f"{PREFIX}{the_task.id}",
        {"Image": TEST_IMAGE, "Cmd": ["sh", "-c", command], "Labels": test_labels},
        {"NetworkMode": f"container:{sandbox.id}"},
    )
    await docker.start_container(container)
    assert await docker.wait_container(container) == 0
    logs = sh("docker", "logs", container).stdout
    assert "inet 10.0.1.9/24" in logs
    assert "1 packets received" in logs

    await remove_sandbox(docker, the_task)
