"""What a host's kernel must hold for the overlay networks it takes part in, as a plan.

Everything comes from the manager's view (``NetworkView``): no multicast, no learning, no
gossip. Per network, the host has

- a bridge ``swlbr<vni>`` (up, MTU 1450, the host's own address on the network when it has one,
  and then the MAC derived from that address, so that other hosts reach it by the MAC they
  derive alike), loose reverse-path filtering;
- a VXLAN device ``swlvx<vni>`` (id = VNI, UDP 4789, local = the host's address, learning off,
  MTU 1450) enslaved to the bridge;
- for every peer (an address of the network that lives on another host) a forwarding entry
  ``peer.mac → peer.vtep`` on the VXLAN device and a permanent neighbour entry
  ``peer.ip → peer.mac`` on the bridge;
- for every distinct remote VTEP an all-zeros forwarding entry: broadcasts (ARP) are replicated
  to each of them by the sender (head-end replication), unicast, never multicast.

And, once it has any network, IPv4 forwarding on.

``plan_host`` compares that with what exists (``HostNetState``, read by the executor in
``swarmlet.net.netlink``: only links named ``swlbr*``/``swlvx*`` and what hangs off them) and
returns the operations that take the host from one to the other, stale networks removed.
Planning against the result of executing a plan yields no operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from swarmlet.net.names import VXLAN_PORT, bridge_name, ip_of, mac_for, vxlan_name
from swarmlet.protocol import NetworkView

# Ethernet's 1500 less VXLAN's 50 bytes of outer headers.
OVERLAY_MTU = 1450
ZERO_MAC = "00:00:00:00:00:00"
BRIDGE_PREFIX = "swlbr"
VXLAN_PREFIX = "swlvx"
IP_FORWARD = "net/ipv4/ip_forward"
# Loose (2): a reply of a routing-mesh connection may come back on another interface than
# the one the route to its source names.
RP_FILTER_LOOSE = "2"


def rp_filter_key(link: str) -> str:
    return f"net/ipv4/conf/{link}/rp_filter"


def is_overlay_link(name: str) -> bool:
    """A link this module owns: the executor reads these and nothing else."""
    return name.startswith((BRIDGE_PREFIX, VXLAN_PREFIX))


@dataclass(frozen=True)
class Link:
    """A bridge or VXLAN device. ``mac`` None: whatever the kernel chose (not managed)."""

    name: str
    kind: str  # "bridge", "vxlan" (what the kernel says, for a link found)
    mtu: int = OVERLAY_MTU
    up: bool = True
    master: str | None = None
    mac: str | None = None
    # VXLAN only.
    vni: int | None = None
    local: str | None = None
    port: int | None = None
    learning: bool | None = None

    def compatible(self, wanted: Link) -> bool:
        """Whether this link can become ``wanted`` by changing it; if not, it is remade."""
        return (self.kind, self.vni, self.local, self.port, self.learning) == (
            wanted.kind,
            wanted.vni,
            wanted.local,
            wanted.port,
            wanted.learning,
        )


@dataclass(frozen=True)
class HostNetState:
    """The overlay part of a host's kernel state (or the part a host should have)."""

    links: Mapping[str, Link] = field(default_factory=dict)
    # link → its IPv4 addresses in CIDR notation.
    addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # VXLAN device → its forwarding entries, (MAC, destination VTEP).
    fdb: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    # bridge → its permanent neighbour entries, IP → MAC.
    neighbours: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # sysctl key (``net/ipv4/ip_forward``) → value.
    sysctls: Mapping[str, str] = field(default_factory=dict)


# -- operations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateLink:
    """Create the link down, with no master: its kind's attributes, MTU and MAC (if set)."""

    link: Link


@dataclass(frozen=True)
class DeleteLink:
    name: str


@dataclass(frozen=True)
class SetLink:
    """Change what is not None."""

    name: str
    mtu: int | None = None
    mac: str | None = None
    master: str | None = None
    up: bool | None = None


@dataclass(frozen=True)
class AddAddress:
    link: str
    cidr: str


@dataclass(frozen=True)
class DeleteAddress:
    link: str
    cidr: str


@dataclass(frozen=True)
class AddFdb:
    """Appended: the all-zeros MAC has one entry per remote VTEP."""

    link: str
    mac: str
    dst: str


@dataclass(frozen=True)
class DeleteFdb:
    link: str
    mac: str
    dst: str


@dataclass(frozen=True)
class SetNeighbour:
    """A permanent neighbour entry, replacing any other for ``ip``."""

    link: str
    ip: str
    mac: str


@dataclass(frozen=True)
class DeleteNeighbour:
    link: str
    ip: str


@dataclass(frozen=True)
class SetSysctl:
    key: str
    value: str


Op = (
    CreateLink
    | DeleteLink
    | SetLink
    | AddAddress
    | DeleteAddress
    | AddFdb
    | DeleteFdb
    | SetNeighbour
    | DeleteNeighbour
    | SetSysctl
)


# -- the wanted state -----------------------------------------------------------------------


def desired_state(
    views: Sequence[NetworkView], host_addr: str, port: int = VXLAN_PORT
) -> HostNetState:
    """What the views want on the host whose underlay address is ``host_addr``, VXLAN on the
    swarm's data path port."""
    local = ip_of(host_addr)
    links: dict[str, Link] = {}
    addresses: dict[str, frozenset[str]] = {}
    fdb: dict[str, frozenset[tuple[str, str]]] = {}
    neighbours: dict[str, Mapping[str, str]] = {}
    sysctls: dict[str, str] = {}
    for view in _by_vni(views):
        bridge, vxlan = bridge_name(view.vni), vxlan_name(view.vni)
        own = view.local_address
        links[bridge] = Link(bridge, "bridge", mac=mac_for(own) if own else None)
        links[vxlan] = Link(
            vxlan,
            "vxlan",
            master=bridge,
            vni=view.vni,
            local=local,
            port=port,
            learning=False,
        )
        addresses[bridge] = frozenset({own}) if own else frozenset()
        # A peer on this very host is no peer: its frames never leave the bridge.
        peers = [peer for peer in view.peers if ip_of(peer.vtep) != local]
        entries = {(peer.mac.lower(), ip_of(peer.vtep)) for peer in peers}
        entries |= {(ZERO_MAC, ip_of(peer.vtep)) for peer in peers}
        fdb[vxlan] = frozenset(entries)
        neighbours[bridge] = {ip_of(peer.ip): peer.mac.lower() for peer in peers}
        sysctls[rp_filter_key(bridge)] = RP_FILTER_LOOSE
    if links:
        sysctls[IP_FORWARD] = "1"
    return HostNetState(links, addresses, fdb, neighbours, sysctls)


def _by_vni(views: Sequence[NetworkView]) -> list[NetworkView]:
    """One view per VNI (the first), in VNI order, so that plans are stable."""
    seen: dict[int, NetworkView] = {}
    for view in views:
        seen.setdefault(view.vni, view)
    return [seen[vni] for vni in sorted(seen)]


# -- the plan -------------------------------------------------------------------------------


def plan_host(
    views: Sequence[NetworkView], host_addr: str, current: HostNetState, port: int = VXLAN_PORT
) -> list[Op]:
    """The operations that take the host from ``current`` to what ``views`` want."""
    return plan_changes(current, desired_state(views, host_addr, port))


def plan_changes(current: HostNetState, wanted: HostNetState) -> list[Op]:
    ops: list[Op] = []
    # Links that go, or are remade (deleted, then made again): VXLAN devices before their bridges.
    deleted: set[str] = set()
    for name in sorted(current.links, key=_deletion_order):
        have = current.links[name]
        if name not in wanted.links or not have.compatible(wanted.links[name]):
            ops.append(DeleteLink(name))
            deleted.add(name)
    # Then per link, bridges first (a VXLAN device's master must exist).
    for name in sorted(wanted.links, key=_creation_order):
        want = wanted.links[name]
        fresh = name not in current.links or name in deleted
        if fresh:
            ops.append(CreateLink(want))
            # What creating it leaves: the link as wanted, but down and with no master.
            have = replace(want, up=False, master=None)
        else:
            have = current.links[name]
            if have.master in deleted:
                # Deleting its master set it free.
                have = replace(have, master=None)
        ops.extend(_link_changes(have, want))
        ops.extend(_address_changes(name, current, wanted, fresh))
        ops.extend(_neighbour_changes(name, current, wanted, fresh))
        ops.extend(_fdb_changes(name, current, wanted, fresh))
    for key in sorted(wanted.sysctls, key=lambda key: (key == IP_FORWARD, key)):
        value = wanted.sysctls[key]
        if _sysctl_is_fresh(key, deleted) or current.sysctls.get(key) != value:
            ops.append(SetSysctl(key, value))
    return ops


def _deletion_order(name: str) -> tuple[bool, str]:
    return (name.startswith(BRIDGE_PREFIX), name)


def _creation_order(name: str) -> tuple[int, str]:
    # swlbr4097, swlvx4097, swlbr4098, …: a network's bridge, then its VXLAN device.
    vni = name.removeprefix(BRIDGE_PREFIX).removeprefix(VXLAN_PREFIX)
    return (int(vni) if vni.isdigit() else -1, name)


def _link_changes(have: Link, want: Link) -> Iterable[Op]:
    change = SetLink(
        want.name,
        mtu=want.mtu if have.mtu != want.mtu else None,
        mac=want.mac if want.mac is not None and have.mac != want.mac else None,
        master=want.master if want.master is not None and have.master != want.master else None,
        up=want.up if have.up != want.up else None,
    )
    if change != SetLink(want.name):
        yield change


def _address_changes(
    name: str, current: HostNetState, wanted: HostNetState, fresh: bool
) -> Iterable[Op]:
    have = frozenset() if fresh else current.addresses.get(name, frozenset())
    want = wanted.addresses.get(name, frozenset())
    yield from (DeleteAddress(name, cidr) for cidr in sorted(have - want))
    yield from (AddAddress(name, cidr) for cidr in sorted(want - have))


def _neighbour_changes(
    name: str, current: HostNetState, wanted: HostNetState, fresh: bool
) -> Iterable[Op]:
    have: Mapping[str, str] = {} if fresh else current.neighbours.get(name, {})
    want = wanted.neighbours.get(name, {})
    yield from (DeleteNeighbour(name, ip) for ip in sorted(set(have) - set(want)))
    yield from (SetNeighbour(name, ip, want[ip]) for ip in sorted(want) if have.get(ip) != want[ip])


def _fdb_changes(
    name: str, current: HostNetState, wanted: HostNetState, fresh: bool
) -> Iterable[Op]:
    have = frozenset() if fresh else current.fdb.get(name, frozenset())
    want = wanted.fdb.get(name, frozenset())
    yield from (DeleteFdb(name, mac, dst) for mac, dst in sorted(have - want))
    yield from (AddFdb(name, mac, dst) for mac, dst in sorted(want - have))


def _sysctl_is_fresh(key: str, deleted: set[str]) -> bool:
    """A remade link's sysctls are the kernel's defaults again."""
    return any(key == rp_filter_key(name) for name in deleted)
