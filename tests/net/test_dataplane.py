"""The data plane on a real kernel: two "hosts" (network namespaces on a veth underlay, made
here, named ``swlt-dp-<random>-a``/``-b``), each programmed by ``dataplane_host.py`` run inside
it as its swarmletd would, and a "task" namespace on each (a ``sleep`` in a namespace of its
own). Needs root, ``ip``, ``nsenter``, ``unshare`` and ``/bin/busybox``: without them the tests
skip, except under ``CI=true``, where they fail. Everything made is removed after each test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from swarmlet.ids import new_id
from swarmlet.models import IPAMConfig, Network, NetworkAttachment, NetworkIPAM, Task
from swarmlet.net.driver import host_side
from swarmlet.net.names import mac_for
from swarmlet.protocol import NetworkView, Peer
from tests.net.dataplane_lab import BUSYBOX, HELPER, PREFIX, require_kernel, sh

UNDERLAY = {"a": "192.168.77.1", "b": "192.168.77.2"}
OURS = ("swlbr", "swlvx", "swlv")


@dataclass
class Lab:
    """Two hosts on an underlay, and the task namespaces made on the way."""

    prefix: str
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def netns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def run(self, host: str, command: str, **args: Any) -> dict[str, Any]:
        """The data plane's API, called inside the host's namespace."""
        done = sh(
            "nsenter",
            f"--net=/run/netns/{self.netns(host)}",
            sys.executable,
            HELPER,
            command,
            json.dumps(args),
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def in_host(
        self, host: str, *argv: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return sh("nsenter", f"--net=/run/netns/{self.netns(host)}", *argv, check=check)

    def task_namespace(self) -> int:
        """A process in a fresh network namespace: the stand-in for a task's sandbox."""
        own = os.readlink("/proc/self/ns/net")
        process = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self.processes.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{process.pid}/ns/net") != own:
                    return process.pid
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise AssertionError("unshare made no namespace")

    def links(self, host: str) -> list[str]:
        return list(self.run(host, "state")["links"])

    def vxlan_packets(self, host: str, link: str) -> tuple[int, int]:
        """(received, sent) by the host's VXLAN device."""
        shown = json.loads(self.in_host(host, "ip", "-s", "-j", "link", "show", link).stdout)
        stats = shown[0]["stats64"]
        return stats["rx"]["packets"], stats["tx"]["packets"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_kernel()
    lab = Lab(f"{PREFIX}{uuid.uuid4().hex[:6]}")
    try:
        for host in UNDERLAY:
            sh("ip", "netns", "add", lab.netns(host))
            sh("ip", "-n", lab.netns(host), "link", "set", "lo", "up")
        a, b = lab.netns("a"), lab.netns("b")
        sh("ip", "-n", a, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", b)
        for host, address in UNDERLAY.items():
            sh("ip", "-n", lab.netns(host), "addr", "add", f"{address}/24", "dev", "u0")
            sh("ip", "-n", lab.netns(host), "link", "set", "u0", "up")
        yield lab
    finally:
        for process in lab.processes:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        for host in UNDERLAY:
            sh("ip", "netns", "del", lab.netns(host), check=False)


def network(vni: int, subnet: str) -> Network:
    return Network(
        id=f"net{vni}",
        name=f"net{vni}",
        vni=vni,
        ipam=NetworkIPAM(config=[IPAMConfig(subnet=subnet)]),
    )


def task_on(net: Network, address: str) -> Task:
    return Task(
        id=new_id(),
        name="web.1",
        service_id="web",
        service_name="web",
        networks_attachments=[NetworkAttachment(network=net, addresses=[address])],
    )


def peer(ip: str, host: str) -> dict[str, Any]:
    return Peer(ip=ip, mac=mac_for(ip), vtep=UNDERLAY[host]).model_dump()


def view(net: Network, local: str, peers: list[dict[str, Any]]) -> dict[str, Any]:
    return NetworkView(
        id=net.id,
        name=net.name,
        vni=net.vni,
        subnet=net.subnet,
        local_address=local,
        peers=[Peer.model_validate(p) for p in peers],
    ).model_dump()


def dumped(task: Task) -> dict[str, Any]:
    return task.model_dump(mode="json", by_alias=True)


def ours(links: list[str]) -> list[str]:
    return [link for link in links if link.startswith(OURS)]


TCP_SERVER = """
import socket
server = socket.create_server(("10.0.1.6", 7000))
print("listening", flush=True)
conn, peer = server.accept()
conn.sendall(conn.recv(100).upper() + b" from " + peer[0].encode())
conn.close()
"""

TCP_CLIENT = """
import socket
with socket.create_connection(("10.0.1.6", 7000), timeout=10) as conn:
    conn.sendall(b"hello")
    print(conn.recv(100).decode())
"""


def test_tasks_on_two_hosts_talk_over_vxlan_and_leave_nothing_behind(lab: Lab) -> None:
    net = network(4097, "10.0.1.0/24")
    task_a, task_b = task_on(net, "10.0.1.5/24"), task_on(net, "10.0.1.6/24")
    # What the manager would send each host: the others' addresses as peers.
    views = {
        "a": view(net, "10.0.1.2/24", [peer("10.0.1.3", "b"), peer("10.0.1.6", "b")]),
        "b": view(net, "10.0.1.3/24", [peer("10.0.1.2", "a"), peer("10.0.1.5", "a")]),
    }
    for host, address in UNDERLAY.items():
        assert lab.run(host, "program", views=[views[host]], host_addr=address)["ops"]
        # Planning against what the kernel now holds: nothing left to do.
        assert lab.run(host, "program", views=[views[host]], host_addr=address)["ops"] == []

    pids = {}
    for host, task, local in (("a", task_a, "10.0.1.2/24"), ("b", task_b, "10.0.1.3/24")):
        pids[host] = lab.task_namespace()
        answer = lab.run(
            host, "attach", task=dumped(task), pid=pids[host], local_addresses={net.id: local}
        )
        host_ns = f"net:[{os.stat(f'/run/netns/{lab.netns(host)}').st_ino}]"
        # No thread of the "daemon" was left in the task's namespace.
        assert set(answer["thread_namespaces"]) == {host_ns}

    in_task_a = ("nsenter", f"--net=/proc/{pids['a']}/ns/net")
    shown = sh(*in_task_a, "ip", "-j", "addr", "show", "eth0").stdout
    eth0 = json.loads(shown)[0]
    assert eth0["address"] == mac_for("10.0.1.5")
    assert eth0["mtu"] == 1450
    assert "10.0.1.5" in [a["local"] for a in eth0["addr_info"]]
    assert "default via 10.0.1.2 dev eth0" in sh(*in_task_a, "ip", "route").stdout

    received_b, sent_a = (
        lab.vxlan_packets("b", "swlvx4097")[0],
        lab.vxlan_packets("a", "swlvx4097")[1],
    )
    sh(*in_task_a, BUSYBOX, "ping", "-c", "3", "-W", "2", "10.0.1.6")

    server = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pids['b']}/ns/net", sys.executable, "-c", TCP_SERVER],
        stdout=subprocess.PIPE,
        text=True,
    )
    lab.processes.append(server)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "listening"
    reply = sh(*in_task_a, sys.executable, "-c", TCP_CLIENT).stdout.strip()
    assert reply == "HELLO from 10.0.1.5"
    server.wait(timeout=10)

    # Task A learned task B's MAC by ARP, broadcast to host B by head-end replication.
    neighbours = sh(*in_task_a, "ip", "neigh", "show", "10.0.1.6").stdout
    assert mac_for("10.0.1.6") in neighbours
    # The host's own address reaches the remote task through its permanent neighbour entries.
    lab.in_host("a", BUSYBOX, "ping", "-c", "1", "-W", "2", "10.0.1.6")
    # And all of it crossed in VXLAN: 3 pings and the TCP exchange at the very least.
    assert lab.vxlan_packets("a", "swlvx4097")[1] - sent_a >= 3 + 5
    assert lab.vxlan_packets("b", "swlvx4097")[0] - received_b >= 3 + 5

    for host, task in (("a", task_a), ("b", task_b)):
        left = lab.run(host, "detach", task=dumped(task))["links"]
        assert [link for link in ours(left) if not link.startswith(("swlbr", "swlvx"))] == []
        lab.run(host, "detach", task=dumped(task))  # idempotent
        assert ours(lab.run(host, "program", views=[], host_addr=UNDERLAY[host])["links"]) == []
    # The task's namespace lost its interface with the host side.
    assert "eth0" not in sh(*in_task_a, "ip", "-br", "link").stdout


def test_a_network_no_longer_viewed_is_removed_and_others_stay(lab: Lab) -> None:
    one, two = network(4097, "10.0.1.0/24"), network(4098, "10.0.2.0/24")
    both = [view(one, "10.0.1.2/24", [peer("10.0.1.3", "b")]), view(two, "10.0.2.2/24", [])]
    made = lab.run("a", "program", views=both, host_addr=UNDERLAY["a"])["links"]
    assert sorted(ours(made)) == ["swlbr4097", "swlbr4098", "swlvx4097", "swlvx4098"]
    task = task_on(two, "10.0.2.5/24")
    lab.run(
        "a",
        "attach",
        task=dumped(task),
        pid=lab.task_namespace(),
        local_addresses={two.id: "10.0.2.2/24"},
    )
    answer = lab.run("a", "program", views=both[:1], host_addr=UNDERLAY["a"])
    assert [op.split()[0] for op in answer["ops"]] == ["DeleteLink", "DeleteLink"]
    # The task's veth was on the removed bridge: it stays until the task is detached.
    veth = host_side(task.id)
    assert sorted(ours(answer["links"])) == sorted(["swlbr4097", "swlvx4097", veth])
    lab.run("a", "detach", task=dumped(task))
    assert ours(lab.run("a", "program", views=[], host_addr=UNDERLAY["a"])["links"]) == []


def test_attaching_before_the_network_is_programmed_is_unavailable(lab: Lab) -> None:
    net = network(4097, "10.0.1.0/24")
    task = task_on(net, "10.0.1.5/24")
    done = lab.in_host(
        "a",
        sys.executable,
        HELPER,
        "attach",
        json.dumps(
            {
                "task": dumped(task),
                "pid": lab.task_namespace(),
                "local_addresses": {net.id: "10.0.1.2/24"},
            }
        ),
        check=False,
    )
    assert done.returncode != 0
    assert "Unavailable: the bridge swlbr4097 is not on this host yet" in done.stderr
    assert ours(lab.links("a")) == []
