"""The rtnetlink client (swarmlet.net.rtnetlink): its encoding, then every request it makes
against a real kernel, in scratch network namespaces, each checked with iproute2 (``ip -j``,
``bridge -j``) reading the kernel independently. Needs root and iproute2 (see
dataplane_lab.py)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmlet.net.netlink import in_netns
from swarmlet.net.rtnetlink import (
    AF_BRIDGE,
    NTF_MASTER,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    NetlinkError,
    Rtnetlink,
    VethPeer,
    Vxlan,
    attr,
    attrs,
)
from tests.net.dataplane_lab import PREFIX, require_kernel, sh

T = TypeVar("T")
FDB = {"state": NUD_NOARP | NUD_PERMANENT, "flags": NTF_SELF}

# -- the encoding ---------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(1, 0x3FFF), st.binary(max_size=40)), max_size=8))
def test_attributes_read_back_as_written_the_first_of_each_type(
    written: list[tuple[int, bytes]],
) -> None:
    data = b"".join(attr(kind, payload) for kind, payload in written)
    assert len(data) % 4 == 0
    first: dict[int, bytes] = {}
    for kind, payload in written:
        first.setdefault(kind, payload)
    assert attrs(data) == first


def test_a_nested_attributes_flags_are_not_its_type_and_a_short_one_ends_the_list() -> None:
    nested = attr(0x8000 | 18, attr(1, b"vxlan\0"))  # NLA_F_NESTED | IFLA_LINKINFO
    assert attrs(nested) == {18: attr(1, b"vxlan\0")}
    truncated = attr(3, b"swlbr1\0") + b"\x40\x00\x04\x00"  # says 64 bytes, has 4
    assert attrs(truncated) == {3: b"swlbr1\0"}


# -- against the kernel ---------------------------------------------------------------------


@pytest.fixture
def netns() -> Iterator[Callable[[], str]]:
    """Makes scratch network namespaces; all are removed afterwards."""
    require_kernel()
    made: list[str] = []

    def make() -> str:
        name = f"{PREFIX}{uuid.uuid4().hex[:6]}-r"
        sh("ip", "netns", "add", name)
        made.append(name)
        return name

    yield make
    for name in made:
        sh("ip", "netns", "del", name, check=False)


def inside(namespace: str, work: Callable[[Rtnetlink], T]) -> T:
    def run() -> T:
        with Rtnetlink() as rtnl:
            return work(rtnl)

    return in_netns(f"/run/netns/{namespace}", run)


def ip(namespace: str, *args: str) -> Any:
    return json.loads(sh("ip", "-n", namespace, "-j", *args).stdout or "[]")


def link_of(namespace: str, name: str) -> dict[str, Any]:
    (found,) = ip(namespace, "-d", "link", "show", "dev", name)
    return found  # type: ignore[no-any-return]


def test_a_bridge_and_a_vxlan_device_are_made_as_asked(netns) -> None:
    ns = netns()

    def make(rtnl: Rtnetlink) -> None:
        rtnl.add_link("swlbr9", "bridge", mtu=1450, mac="02:42:0a:00:09:01")
        rtnl.add_link("swlvx9", "vxlan", mtu=1450, vxlan=Vxlan(4105, "192.168.77.1", 4789, False))

    inside(ns, make)
    bridge, vxlan = link_of(ns, "swlbr9"), link_of(ns, "swlvx9")
    assert (bridge["mtu"], bridge["address"]) == (1450, "02:42:0a:00:09:01")
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    data = vxlan["linkinfo"]["info_data"]
    assert vxlan["linkinfo"]["info_kind"] == "vxlan"
    assert (data["id"], data["local"], data["port"], data["learning"]) == (
        4105,
        "192.168.77.1",
        4789,
        False,
    )
    # The client reads back what iproute2 reads.
    links = {link.name: link for link in inside(ns, lambda rtnl: rtnl.links())}
    assert links["swlvx9"].vxlan == Vxlan(4105, "192.168.77.1", 4789, False)
    assert (links["swlvx9"].kind, links["swlvx9"].mtu) == ("vxlan", 1450)
    assert links["swlbr9"].mac == "02:42:0a:00:09:01"
    assert links["swlvx9"].mac == vxlan["address"]
    assert links["lo"].kind == ""


def test_links_are_set_looked_up_and_deleted(netns) -> None:
    ns = netns()

    def work(rtnl: Rtnetlink) -> tuple[int | None, int | None]:
        rtnl.add_link("swlbr9", "bridge", mtu=1500)
        rtnl.add_link("swlvx9", "vxlan", mtu=1500, vxlan=Vxlan(4105, "192.168.77.1", 4789, True))
        bridge, vxlan = rtnl.link_index("swlbr9"), rtnl.link_index("swlvx9")
        assert bridge is not None
        assert vxlan is not None
        rtnl.set_link(vxlan, master=bridge, up=True, mtu=1400, mac="02:42:0a:00:09:09")
        rtnl.set_link(bridge, up=True)
        return bridge, vxlan

    bridge, _ = inside(ns, work)
    vxlan = link_of(ns, "swlvx9")
    assert (vxlan["master"], vxlan["mtu"], vxlan["address"]) == (
        "swlbr9",
        1400,
        "02:42:0a:00:09:09",
    )
    assert "UP" in vxlan["flags"]
    masters = {link.name: link.master for link in inside(ns, lambda rtnl: rtnl.links())}
    assert masters["swlvx9"] == bridge
    inside(ns, lambda rtnl: rtnl.set_link(rtnl.link_index("swlvx9") or 0, up=False))
    assert "UP" not in link_of(ns, "swlvx9")["flags"]
    inside(ns, lambda rtnl: rtnl.delete_link(rtnl.link_index("swlvx9") or 0))
    assert inside(ns, lambda rtnl: rtnl.link_index("swlvx9")) is None
    assert [link["ifname"] for link in ip(ns, "link")] == ["lo", "swlbr9"]


def test_the_kernels_refusals_raise_with_its_errno(netns) -> None:
    ns = netns()
    inside(ns, lambda rtnl: rtnl.add_link("swlbr9", "bridge", mtu=1500))
    with pytest.raises(NetlinkError) as exists:
        inside(ns, lambda rtnl: rtnl.add_link("swlbr9", "bridge", mtu=1500))
    assert exists.value.errno == errno.EEXIST
    with pytest.raises(NetlinkError) as missing:
        inside(ns, lambda rtnl: rtnl.delete_link(4242))
    assert missing.value.errno == errno.ENODEV
    assert inside(ns, lambda rtnl: rtnl.link_index("swlnone")) is None


def test_addresses_are_added_listed_and_deleted(netns) -> None:
    ns = netns()

    def add(rtnl: Rtnetlink) -> int:
        rtnl.add_link("swlbr9", "bridge", mtu=1500)
        index = rtnl.link_index("swlbr9") or 0
        rtnl.add_address(index, "10.0.9.2", 24)
        rtnl.add_address(index, "10.0.8.7", 32)
        return index

    index = inside(ns, add)
    (link,) = ip(ns, "addr", "show", "dev", "swlbr9")
    shown = {(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet"}
    assert shown == {("10.0.9.2", 24), ("10.0.8.7", 32)}
    listed = {
        (a.address, a.prefixlen) for a in inside(ns, lambda r: r.addresses()) if a.index == index
    }
    assert listed == shown
    with pytest.raises(NetlinkError) as twice:
        inside(ns, lambda rtnl: rtnl.add_address(index, "10.0.9.2", 24))
    assert twice.value.errno == errno.EEXIST
    inside(ns, lambda rtnl: rtnl.delete_address(index, "10.0.9.2", 24))
    (link,) = ip(ns, "addr", "show", "dev", "swlbr9")
    assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == ["10.0.8.7"]


def test_a_vxlan_devices_forwarding_entries_and_a_bridges_neighbours(netns) -> None:
    ns = netns()
    mac = "02:42:0a:00:09:03"

    def work(rtnl: Rtnetlink) -> None:
        rtnl.add_link("swlbr9", "bridge", mtu=1450)
        rtnl.add_link("swlvx9", "vxlan", mtu=1450, vxlan=Vxlan(4105, "192.168.77.1", 4789, False))
        vxlan, bridge = rtnl.link_index("swlvx9") or 0, rtnl.link_index("swlbr9") or 0
        rtnl.set_link(vxlan, master=bridge, up=True)
        # One MAC behind two remote hosts: a VXLAN device keeps both (append).
        for dst in ("192.168.77.2", "192.168.77.3"):
            rtnl.set_neighbour(AF_BRIDGE, vxlan, lladdr=mac, dst=dst, append=True, **FDB)
        rtnl.delete_neighbour(AF_BRIDGE, vxlan, lladdr=mac, dst="192.168.77.3", **FDB)
        rtnl.set_neighbour(socket.AF_INET, bridge, lladdr=mac, dst="10.0.9.3")
        rtnl.set_neighbour(socket.AF_INET, bridge, lladdr="02:42:0a:00:09:04", dst="10.0.9.4")
        rtnl.set_neighbour(socket.AF_INET, bridge, lladdr="02:42:0a:00:09:05", dst="10.0.9.4")
        rtnl.delete_neighbour(socket.AF_INET, bridge, dst="10.0.9.3")

    inside(ns, work)
    fdb = json.loads(sh("bridge", "-n", ns, "-j", "fdb", "show", "dev", "swlvx9").stdout)
    remote = [(e["mac"], e["dst"], e.get("state"), e["flags"]) for e in fdb if "dst" in e]
    assert remote == [(mac, "192.168.77.2", "permanent", ["self"])]
    neighbours = [
        (n["dst"], n["lladdr"], n["state"]) for n in ip(ns, "neigh", "show", "dev", "swlbr9")
    ]
    assert neighbours == [("10.0.9.4", "02:42:0a:00:09:05", ["PERMANENT"])]
    read = inside(ns, lambda rtnl: (rtnl.neighbours(AF_BRIDGE), rtnl.neighbours(socket.AF_INET)))
    assert [(e.lladdr, e.dst) for e in read[0] if e.dst] == [(mac, "192.168.77.2")]
    assert [(e.dst, e.lladdr, bool(e.state & NUD_PERMANENT)) for e in read[1]] == [
        ("10.0.9.4", "02:42:0a:00:09:05", True)
    ]


def test_a_veth_peer_is_made_in_a_tasks_namespace_and_given_its_route(netns) -> None:
    host, task = netns(), netns()
    # A process in the task's namespace, as a sandbox is (nsenter runs sleep in its place).
    holder = subprocess.Popen(["nsenter", f"--net=/run/netns/{task}", "sleep", "60"])
    try:
        pid = holder.pid
        wanted = f"net:[{os.stat(f'/run/netns/{task}').st_ino}]"
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{pid}/ns/net") != wanted:  # until nsenter has entered it
            assert time.monotonic() < deadline, "the holder never entered the namespace"
            time.sleep(0.01)

        def make(rtnl: Rtnetlink) -> None:
            rtnl.add_link("swlbr9", "bridge", mtu=1450)
            peer = VethPeer("eth0", pid, 1450, "02:42:0a:00:09:07")
            rtnl.add_link("swlv9", "veth", mtu=1450, peer=peer)
            veth = rtnl.link_index("swlv9") or 0
            rtnl.set_link(veth, master=rtnl.link_index("swlbr9"), up=True)
            rtnl.set_neighbour(
                AF_BRIDGE, veth, lladdr="02:42:0a:00:09:07", state=NUD_NOARP, flags=NTF_MASTER
            )

        inside(host, make)

        def configure(rtnl: Rtnetlink) -> None:
            index = rtnl.link_index("eth0") or 0
            rtnl.add_address(index, "10.0.9.7", 24)
            rtnl.set_link(index, up=True)
            rtnl.replace_default_route("10.0.9.1")

        inside(task, configure)
    finally:
        holder.kill()
        holder.wait()
    eth0 = link_of(task, "eth0")
    assert (eth0["mtu"], eth0["address"], eth0["linkinfo"]["info_kind"]) == (
        1450,
        "02:42:0a:00:09:07",
        "veth",
    )
    assert link_of(host, "swlv9")["master"] == "swlbr9"
    (route,) = ip(task, "route", "show", "default")
    assert (route["gateway"], route["dev"]) == ("10.0.9.1", "eth0")
    pinned = json.loads(sh("bridge", "-n", host, "-j", "fdb", "show", "dev", "swlv9").stdout)
    assert {"mac": "02:42:0a:00:09:07", "master": "swlbr9", "state": "static"}.items() <= next(
        e for e in pinned if e["mac"] == "02:42:0a:00:09:07"
    ).items()
