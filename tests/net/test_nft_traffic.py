"""Real connections through the VIP and mesh rulesets (root; skipped without, failed under
CI=true), in namespaces the test makes and removes:

    client 192.168.77.2 ── ext0 192.168.77.1  host  swlbr4096 10.255.0.1/24 (the ingress bridge)
                                                      ├── b1 10.255.0.11   (tasks on this host,
                                                      ├── b2 10.255.0.12    default route: host)
                                                      ├── task 10.255.0.20
                                                      └── host2 br0 10.255.0.2 ── b3 10.255.0.13

host2 stands for another host reached over the overlay: b3's default route is host2, which
does not forward, so b3 can only answer addresses on the overlay itself. Each backend answers
a connection with its name and the address it saw the connection come from.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarmlet.net import nft
from swarmlet.net.host_ports import HostPort, host_ports_ruleset, remove_host_ports_ruleset
from swarmlet.net.mesh import MESH_SYSCTLS, mesh_ruleset, remove_mesh
from swarmlet.net.vip import vip_ruleset
from swarmlet.protocol import PublishedBackend, PublishedPort, ServiceEntry
from tests.net.nft_netns import Namespaces, ask, in_netns, namespaces, ruleset_of

BRIDGE = "swlbr4096"
HOST_EXT, CLIENT = "192.168.77.1", "192.168.77.2"
HOST_INGRESS = "10.255.0.1"
BACKENDS = {"b1": "10.255.0.11", "b2": "10.255.0.12", "b3": "10.255.0.13"}
LOCAL = {"b1", "b2"}
TASK = "10.255.0.20"
VIP = "10.255.0.100"
TRIES = 30
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


@dataclass
class Lab:
    ns: Namespaces
    host: str
    client: str
    task: str

    def spread(self, netns: str, address: str, port: int) -> dict[str, set[str]]:
        """TRIES connections: backend name → the client addresses it saw."""
        seen: dict[str, set[str]] = collections.defaultdict(set)
        for _ in range(TRIES):
            name, peer = ask(netns, address, port).split()
            seen[name].add(peer)
        return dict(seen)

    def apply_mesh(self, ports: list[PublishedPort]) -> None:
        document = mesh_ruleset(ports, [f"{HOST_INGRESS}/24"], BRIDGE)
        in_netns(self.host, lambda: asyncio.run(nft.apply(document)))


@pytest.fixture
def lab() -> Iterator[Lab]:
    with namespaces() as ns:
        host, client, task = ns.add("host"), ns.add("client"), ns.add("task")
        host2 = ns.add("host2")
        ns.ip(host, "link", "add", BRIDGE, "type", "bridge")
        ns.ip(host, "addr", "add", f"{HOST_INGRESS}/24", "dev", BRIDGE)
        ns.ip(host, "link", "set", BRIDGE, "up")
        ns.link(host, "ext0", client, "eth0")
        ns.ip(host, "addr", "add", f"{HOST_EXT}/24", "dev", "ext0")
        ns.ip(client, "addr", "add", f"{CLIENT}/24", "dev", "eth0")
        ns.ip(client, "route", "add", "default", "via", HOST_EXT)
        in_netns(host, lambda: nft.set_sysctls(MESH_SYSCTLS))
        # Bridged frames skip the IP hooks, as on a host without br_netfilter: the stricter case.
        bridge_nf(ns, host, "0")

        ns.ip(host2, "link", "add", "br0", "type", "bridge")
        ns.ip(host2, "addr", "add", "10.255.0.2/24", "dev", "br0")
        ns.ip(host2, "link", "set", "br0", "up")
        ns.link(host, "vhost2", host2, "up0")
        ns.ip(host, "link", "set", "vhost2", "master", BRIDGE)
        ns.ip(host2, "link", "set", "up0", "master", "br0")

        for name, address in [*BACKENDS.items(), ("task", TASK)]:
            netns = task if name == "task" else ns.add(name)
            on, bridge, gateway = (
                (host2, "br0", "10.255.0.2")
                if name == "b3"
                else (
                    host,
                    BRIDGE,
                    HOST_INGRESS,
                )
            )
            ns.link(on, f"v{name}", netns, "eth0")
            ns.ip(on, "link", "set", f"v{name}", "master", bridge)
            ns.ip(netns, "addr", "add", f"{address}/24", "dev", "eth0")
            ns.ip(netns, "route", "add", "default", "via", gateway)
            if name != "task":
                ns.serve(netns, name, 80)
        yield Lab(ns, host, client, task)


def bridge_nf(ns: Namespaces, netns: str, value: str) -> None:
    """Whether frames crossing a bridge pass the IP hooks (only with br_netfilter loaded)."""
    if Path(BRIDGE_NF).exists():
        in_netns(netns, lambda: nft.set_sysctls({BRIDGE_NF.removeprefix("/proc/sys/"): value}))
    elif value == "1":
        pytest.skip("br_netfilter is not loaded")


def refused_at_once(netns: str, address: str, port: int) -> bool:
    started = time.monotonic()
    try:
        ask(netns, address, port, timeout=3)
    except ConnectionRefusedError:
        return time.monotonic() - started < 1
    return False


def web(*backends: str, ports=(("tcp", 80),)) -> ServiceEntry:
    return ServiceEntry(
        id="w", name="web", vip=VIP, backends=[BACKENDS[b] for b in backends], ports=list(ports)
    )


def published(port: int, *backends: str) -> PublishedPort:
    return PublishedPort(
        service_id="w",
        protocol="tcp",
        published_port=port,
        target_port=80,
        backends=[PublishedBackend(ip=BACKENDS[b], local=b in LOCAL) for b in backends],
    )


def test_a_vip_spreads_connections_over_its_tasks(lab):
    pid = lab.ns.sleeper(lab.task)
    asyncio.run(nft.apply_in_netns(pid, vip_ruleset([web("b1", "b2", "b3")])))

    seen = lab.spread(lab.task, VIP, 80)

    assert seen == {"b1": {TASK}, "b2": {TASK}, "b3": {TASK}}
    assert refused_at_once(lab.task, VIP, 81)  # a port the service does not publish

    asyncio.run(nft.apply_in_netns(pid, vip_ruleset([web("b1", "b3")])))
    assert set(lab.spread(lab.task, VIP, 80)) == {"b1", "b3"}

    asyncio.run(nft.apply_in_netns(pid, vip_ruleset([web()])))
    assert refused_at_once(lab.task, VIP, 80)


def test_a_vip_without_listed_ports_balances_every_port(lab):
    pid = lab.ns.sleeper(lab.task)
    asyncio.run(nft.apply_in_netns(pid, vip_ruleset([web("b2", ports=())])))

    assert ask(lab.task, VIP, 80).split()[0] == "b2"
    assert refused_at_once(lab.task, VIP, 81)  # b2 itself refuses: nothing listens there


def test_the_mesh_answers_on_the_hosts_address_from_outside(lab):
    lab.apply_mesh([published(8080, "b1", "b2", "b3")])

    seen = lab.spread(lab.client, HOST_EXT, 8080)

    # Tasks on this host see the client's real address; the remote one sees this host's.
    assert seen == {"b1": {CLIENT}, "b2": {CLIENT}, "b3": {HOST_INGRESS}}


def test_the_mesh_answers_on_127_0_0_1_and_on_its_address_inside_the_host(lab):
    lab.apply_mesh([published(8080, "b1", "b2", "b3")])

    assert lab.spread(lab.host, "127.0.0.1", 8080) == {
        "b1": {HOST_INGRESS},
        "b2": {HOST_INGRESS},
        "b3": {HOST_INGRESS},
    }
    assert set(lab.spread(lab.host, HOST_EXT, 8080)) == {"b1", "b2", "b3"}


@pytest.mark.parametrize("through_ip_hooks", ["0", "1"])
def test_a_task_on_the_ingress_network_reaches_the_mesh(lab, through_ip_hooks):
    bridge_nf(lab.ns, lab.host, through_ip_hooks)
    lab.apply_mesh([published(8080, "b1", "b2", "b3")])

    assert set(lab.spread(lab.task, HOST_EXT, 8080)) == {"b1", "b2", "b3"}


def test_the_mesh_follows_its_backends(lab):
    lab.apply_mesh([published(8080, "b1", "b2", "b3")])
    lab.apply_mesh([published(8080, "b2", "b3")])

    assert set(lab.spread(lab.client, HOST_EXT, 8080)) == {"b2", "b3"}

    lab.apply_mesh([published(8080)])
    lab.ns.serve(lab.host, "host-itself", 8080)  # the rule refuses, not the empty port
    assert refused_at_once(lab.client, HOST_EXT, 8080)


def test_tasks_reach_the_outside_with_the_hosts_address(lab):
    lab.ns.serve(lab.client, "outside", 7000)
    assert ask(lab.task, CLIENT, 7000) == f"outside {TASK}"

    lab.apply_mesh([])

    assert ask(lab.task, CLIENT, 7000) == f"outside {HOST_EXT}"


def test_127_0_0_1_stays_closed_to_the_network(lab):
    lab.ns.serve(lab.host, "host-loopback", 9000)
    lab.apply_mesh([])
    # The client sends to 127.0.0.1 through the host, as a hostile neighbour could.
    lab.ns.ip(lab.client, "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
    lab.ns.ip(lab.client, "route", "add", "127.0.0.2/32", "via", HOST_EXT)
    in_netns(lab.client, lambda: nft.set_sysctls({"net/ipv4/conf/all/route_localnet": "1"}))

    with pytest.raises(socket.timeout):
        ask(lab.client, "127.0.0.2", 9000, timeout=0.5)


def test_removing_the_mesh_leaves_no_rule(lab):
    lab.apply_mesh([published(8080, "b1", "b3"), published(8081)])

    in_netns(lab.host, lambda: asyncio.run(remove_mesh()))

    assert ruleset_of(lab.host).strip() == ""
    with pytest.raises(ConnectionRefusedError):
        ask(lab.client, HOST_EXT, 8080)


def test_a_host_mode_port_leads_to_its_one_local_task(lab):
    document = host_ports_ruleset([HostPort("tcp", 8090, BACKENDS["b1"], 80)])
    in_netns(lab.host, lambda: asyncio.run(nft.apply(document)))

    # From outside with the client's own address; from the host itself, 127.0.0.1 included.
    assert lab.spread(lab.client, HOST_EXT, 8090) == {"b1": {CLIENT}}
    assert lab.spread(lab.host, "127.0.0.1", 8090) == {"b1": {HOST_INGRESS}}
    assert set(lab.spread(lab.host, HOST_EXT, 8090)) == {"b1"}

    in_netns(lab.host, lambda: asyncio.run(nft.apply(remove_host_ports_ruleset())))
    assert "swarmlet-hostports" not in ruleset_of(lab.host)
