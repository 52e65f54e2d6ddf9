"""A container's interface on an overlay network: a veth pair, one end on the network's
bridge in the host's namespace, the other made straight in another namespace (the engine's,
which moves it into the container; see ``swarmlet.net.driver``).
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence
from dataclasses import dataclass

from swarmlet.errors import NotFound, Unavailable
from swarmlet.net.netlink import index_of, netlink_errors, tolerating
from swarmlet.net.overlay import OVERLAY_MTU
from swarmlet.net.rtnetlink import AF_BRIDGE, NTF_MASTER, NUD_NOARP, Rtnetlink, VethPeer


@dataclass(frozen=True)
class Veth:
    """One veth pair: ``host_name`` on ``bridge``; ``name`` made in the other namespace."""

    host_name: str
    bridge: str
    name: str
    mac: str | None
    mtu: int = OVERLAY_MTU


async def make_veth(veth: Veth, pid: int) -> None:
    """Make the pair, its other end in the namespace of process ``pid`` (made over again if
    an earlier attempt left the host side). ``Unavailable`` while the network's bridge is
    not on this host yet (its network state has not been programmed)."""

    def make() -> None:
        with netlink_errors("opening netlink"), Rtnetlink() as rtnl:
            make_veth_with(rtnl, veth, pid)

    await asyncio.to_thread(make)


async def delete_veths(host_names: Sequence[str]) -> None:
    """Remove the host sides (their peers go with them); those already gone are no error."""

    def delete() -> None:
        with netlink_errors("removing a container's interfaces"), Rtnetlink() as rtnl:
            for name in host_names:
                delete_link(rtnl, name)

    await asyncio.to_thread(delete)


def make_veth_with(rtnl: Rtnetlink, veth: Veth, pid: int) -> None:
    try:
        bridge = index_of(rtnl, veth.bridge)
    except NotFound:
        raise Unavailable(f"the bridge {veth.bridge} is not on this host yet") from None
    with netlink_errors(f"making {veth.host_name} for {veth.name} of process {pid}"):
        delete_link(rtnl, veth.host_name)
        peer = VethPeer(veth.name, pid, veth.mtu, veth.mac or None)
        rtnl.add_link(veth.host_name, "veth", mtu=veth.mtu, mac=None, peer=peer)
        index = index_of(rtnl, veth.host_name)
        rtnl.set_link(index, master=bridge, up=True)
        if veth.mac:
            # The MAC is its address's: a container that had the address before, on another
            # host, left the bridge believing that MAC lives behind the VXLAN port, and it
            # would keep believing so (for minutes) until the new one sent a frame — which it
            # never does if nothing reaches it. Pin the MAC to its port: ``bridge fdb replace
            # ... master static``, an entry in the bridge's table that does not age.
            rtnl.set_neighbour(AF_BRIDGE, index, lladdr=veth.mac, state=NUD_NOARP, flags=NTF_MASTER)


def delete_link(rtnl: Rtnetlink, name: str) -> None:
    with tolerating(errno.ENODEV):
        index = rtnl.link_index(name)
        if index is not None:
            rtnl.delete_link(index)
