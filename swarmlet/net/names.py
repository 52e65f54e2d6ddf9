"""Names and addresses every host derives the same way, so no one has to send them.

Linux interface names are at most 15 characters.
"""

from __future__ import annotations

import ipaddress

VXLAN_PORT = 4789


def mac_for(ip: str) -> str:
    """The MAC of an address on an overlay network: 02:42 and the IPv4 address, as Docker
    does, so a peer's MAC is known from its IP alone."""
    packed = ipaddress.IPv4Address(ip_of(ip)).packed
    return "02:42:" + ":".join(f"{byte:02x}" for byte in packed)


def bridge_name(vni: int) -> str:
    """The host's bridge for the overlay network with this VNI."""
    return f"swlbr{vni}"


def vxlan_name(vni: int) -> str:
    return f"swlvx{vni}"


def host_veth_name(task_id: str, index: int) -> str:
    """The host side of the veth of a task's ``index``-th network attachment."""
    return f"swlv{task_id[:9]}{index}"


def task_interface_name(index: int) -> str:
    """The task side, inside the task's namespace: eth0, eth1, … in attachment order."""
    return f"eth{index}"


def ip_of(cidr: str) -> str:
    """``10.0.1.5/24`` → ``10.0.1.5``."""
    return cidr.partition("/")[0]
