"""A small rtnetlink client: the links, addresses, neighbours and routes swarmlet programs.

Every host's agent reads and writes its overlay with these few requests (bridges, VXLAN and
veth devices, their addresses, forwarding and neighbour entries, a task's default route), and
nothing else of what netlink can do. pyroute2, which did this before, loads some 110 modules
for every message type the kernel has (traffic control, wireless, MPLS...): about 4 MiB of an
agent's 60 MB (benchmarks/scale.py). Here it is the kernel's structures, packed with
``struct``, on a ``socket.AF_NETLINK`` socket (linux/netlink.h, linux/rtnetlink.h,
linux/if_link.h, linux/neighbour.h).

Blocking, in the network namespace of the thread that opens the socket. A request the kernel
refuses raises ``NetlinkError``, an ``OSError`` with the kernel's errno.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

# Message types and flags (linux/netlink.h, linux/rtnetlink.h).
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE = 24
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800

# Attributes (linux/if_link.h, if_addr.h, neighbour.h, rtnetlink.h).
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_PID = 18, 19
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_VXLAN_ID, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 1, 4, 7, 15
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
RTA_GATEWAY = 5
# A nested attribute's type may carry these flags; the type is what is left.
_NLA_TYPE_MASK = 0x3FFF

IFF_UP = 0x1
AF_BRIDGE = 7  # a neighbour of this family is a bridge's (or VXLAN device's) FDB entry
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NTF_MASTER = 0x04
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what `ip route add` says
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_ERROR = struct.Struct("=i")  # nlmsgerr's error, before the request's header
_ATTR = struct.Struct("=HH")  # rtattr: length, type
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_ND = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_RT = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol,
# scope, type, flags
_U32 = struct.Struct("=I")
_BE16 = struct.Struct(">H")
# One read takes a whole batch of a dump: the kernel fills at most 32 KiB per batch.
_RECEIVE_BYTES = 64 * 1024


class NetlinkError(OSError):
    """The kernel refused a request; ``errno`` says why."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message or os.strerror(code))


# -- attributes -----------------------------------------------------------------------------


def _align(length: int) -> int:
    return (length + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    header = _ATTR.pack(_ATTR.size + len(payload), kind)
    return (header + payload).ljust(_align(_ATTR.size + len(payload)), b"\0")


def _text(value: str) -> bytes:
    return value.encode() + b"\0"


def _mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def _ipv4(value: str) -> bytes:
    return socket.inet_aton(value)


def attrs(data: bytes) -> dict[int, bytes]:
    """The attributes in ``data`` by type (the first of each type)."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > len(data):
            break
        found.setdefault(kind & _NLA_TYPE_MASK, data[offset + _ATTR.size : offset + length])
        offset += _align(length)
    return found


def _read_text(value: bytes | None) -> str | None:
    return None if value is None else value.split(b"\0", 1)[0].decode()


def _read_mac(value: bytes | None) -> str | None:
    return None if not value else ":".join(f"{byte:02x}" for byte in value)


def _read_ipv4(value: bytes | None) -> str | None:
    return socket.inet_ntoa(value) if value is not None and len(value) == 4 else None


def _read_u32(value: bytes | None) -> int | None:
    return _U32.unpack(value[:4])[0] if value is not None and len(value) >= 4 else None


# -- what the kernel reports ----------------------------------------------------------------


@dataclass(frozen=True)
class Vxlan:
    vni: int | None
    local: str | None
    port: int | None
    learning: bool


@dataclass(frozen=True)
class LinkMessage:
    index: int
    flags: int
    name: str
    mtu: int | None
    master: int | None  # the index of the bridge it is a port of
    mac: str | None
    kind: str  # "" for a link without link info (lo, a physical device)
    vxlan: Vxlan | None


@dataclass(frozen=True)
class AddressMessage:
    index: int
    prefixlen: int
    address: str | None


@dataclass(frozen=True)
class NeighbourMessage:
    ifindex: int
    state: int
    flags: int
    dst: str | None
    lladdr: str | None


def _link(body: bytes) -> LinkMessage:
    _, _, index, flags, _ = _IFINFO.unpack_from(body)
    found = attrs(body[_IFINFO.size :])
    info = attrs(found.get(IFLA_LINKINFO, b""))
    kind = _read_text(info.get(IFLA_INFO_KIND)) or ""
    vxlan = None
    if kind == "vxlan":
        data = attrs(info.get(IFLA_INFO_DATA, b""))
        port = data.get(IFLA_VXLAN_PORT)
        vxlan = Vxlan(
            vni=_read_u32(data.get(IFLA_VXLAN_ID)),
            local=_read_ipv4(data.get(IFLA_VXLAN_LOCAL)),
            port=_BE16.unpack(port)[0] if port is not None and len(port) == 2 else None,
            learning=bool(data.get(IFLA_VXLAN_LEARNING, b"\0")[0]),
        )
    return LinkMessage(
        index=index,
        flags=flags,
        name=_read_text(found.get(IFLA_IFNAME)) or "",
        mtu=_read_u32(found.get(IFLA_MTU)),
        master=_read_u32(found.get(IFLA_MASTER)),
        mac=_read_mac(found.get(IFLA_ADDRESS)),
        kind=kind,
        vxlan=vxlan,
    )


def _address(body: bytes) -> AddressMessage:
    _, prefixlen, _, _, index = _IFADDR.unpack_from(body)
    found = attrs(body[_IFADDR.size :])
    return AddressMessage(index, prefixlen, _read_ipv4(found.get(IFA_ADDRESS)))


def _neighbour(body: bytes) -> NeighbourMessage:
    _, ifindex, state, flags, _ = _ND.unpack_from(body)
    found = attrs(body[_ND.size :])
    return NeighbourMessage(
        ifindex, state, flags, _read_ipv4(found.get(NDA_DST)), _read_mac(found.get(NDA_LLADDR))
    )


# -- what swarmlet asks -----------------------------------------------------------------------


@dataclass(frozen=True)
class VethPeer:
    """The other end of a veth pair, made straight in the namespace of process ``pid``."""

    name: str
    pid: int
    mtu: int
    mac: str | None = None


def _link_request(
    index: int = 0,
    *,
    name: str | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    master: int | None = None,
    up: bool | None = None,
    extra: bytes = b"",
) -> bytes:
    flags = IFF_UP if up else 0
    change = IFF_UP if up is not None else 0
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)
    if name is not None:
        body += attr(IFLA_IFNAME, _text(name))
    if mtu is not None:
        body += attr(IFLA_MTU, _U32.pack(mtu))
    if mac is not None:
        body += attr(IFLA_ADDRESS, _mac(mac))
    if master is not None:
        body += attr(IFLA_MASTER, _U32.pack(master))
    return body + extra


def _link_info(kind: str, data: bytes = b"") -> bytes:
    info = attr(IFLA_INFO_KIND, _text(kind))
    if data:
        info += attr(IFLA_INFO_DATA, data)
    return attr(IFLA_LINKINFO, info)


class Rtnetlink:
    """One NETLINK_ROUTE socket; a context manager."""

    def __init__(self) -> None:
        self._socket = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        try:
            self._socket.bind((0, 0))
        except OSError:
            self._socket.close()
            raise
        self._sequence = 0

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # The exchange: one request, then the kernel's messages for it until its acknowledgement
    # (a request) or the end of the dump.

    def _ask(
        self, kind: int, flags: int, body: bytes, *, dump: bool = False
    ) -> list[tuple[int, bytes]]:
        self._sequence += 1
        sequence = self._sequence
        # (NLM_F_DUMP's bits are also NLM_F_REPLACE and NLM_F_EXCL: which is meant depends on
        # the request, so a dump is said so.)
        flags |= NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        self._socket.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, sequence, 0) + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            for reply_kind, reply_sequence, payload in self._receive():
                if reply_sequence != sequence:
                    continue  # a late answer to an earlier request
                if reply_kind in (NLMSG_DONE, NLMSG_ERROR):
                    # An acknowledgement, or the end of a dump: both carry an error, 0 if
                    # none (a dump's may be absent).
                    (error,) = _ERROR.unpack_from(payload) if len(payload) >= 4 else (0,)
                    if error:
                        raise NetlinkError(-error)
                    return replies
                replies.append((reply_kind, payload))

    def _receive(self) -> Iterator[tuple[int, int, bytes]]:
        data = self._socket.recv(_RECEIVE_BYTES)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind, _, sequence, _ = _HEADER.unpack_from(data, offset)
            if length < _HEADER.size:
                break
            yield kind, sequence, data[offset + _HEADER.size : offset + length]
            offset += _align(length)

    # Links

    def links(self) -> list[LinkMessage]:
        replies = self._ask(RTM_GETLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0), dump=True)
        return [_link(body) for kind, body in replies if kind == RTM_NEWLINK]

    def link_index(self, name: str) -> int | None:
        """The index of the link called ``name``, None when there is none."""
        try:
            replies = self._ask(RTM_GETLINK, 0, _link_request(name=name))
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        return next((_link(body).index for kind, body in replies if kind == RTM_NEWLINK), None)

    def add_link(
        self,
        name: str,
        kind: str,
        *,
        mtu: int,
        mac: str | None = None,
        vxlan: Vxlan | None = None,
        peer: VethPeer | None = None,
    ) -> None:
        data = b""
        if vxlan is not None:
            data = attr(IFLA_VXLAN_LEARNING, bytes([int(vxlan.learning)]))
            if vxlan.vni is not None:
                data += attr(IFLA_VXLAN_ID, _U32.pack(vxlan.vni))
            if vxlan.local is not None:
                data += attr(IFLA_VXLAN_LOCAL, _ipv4(vxlan.local))
            if vxlan.port is not None:
                data += attr(IFLA_VXLAN_PORT, _BE16.pack(vxlan.port))
        if peer is not None:
            in_namespace = attr(IFLA_NET_NS_PID, _U32.pack(peer.pid))
            other = _link_request(name=peer.name, mtu=peer.mtu, mac=peer.mac, extra=in_namespace)
            data = attr(VETH_INFO_PEER, other)
        body = _link_request(name=name, mtu=mtu, mac=mac, extra=_link_info(kind, data))
        self._ask(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_link(
        self,
        index: int,
        *,
        mtu: int | None = None,
        mac: str | None = None,
        master: int | None = None,
        up: bool | None = None,
    ) -> None:
        body = _link_request(index, mtu=mtu, mac=mac, master=master, up=up)
        self._ask(RTM_NEWLINK, 0, body)

    def delete_link(self, index: int) -> None:
        self._ask(RTM_DELLINK, 0, _link_request(index))

    # Addresses (IPv4)

    def addresses(self) -> list[AddressMessage]:
        body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
        replies = self._ask(RTM_GETADDR, 0, body, dump=True)
        return [_address(body) for kind, body in replies if kind == RTM_NEWADDR]

    @staticmethod
    def _address_request(index: int, address: str, prefixlen: int) -> bytes:
        # As `ip address add` sends it: the local address, and the same as the peer's.
        packed = _ipv4(address)
        header = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        return header + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        body = self._address_request(index, address, prefixlen)
        self._ask(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def delete_address(self, index: int, address: str, prefixlen: int) -> None:
        self._ask(RTM_DELADDR, 0, self._address_request(index, address, prefixlen))

    # Neighbours: ARP entries (AF_INET) and forwarding entries (AF_BRIDGE)

    def neighbours(self, family: int) -> list[NeighbourMessage]:
        replies = self._ask(RTM_GETNEIGH, 0, _ND.pack(family, 0, 0, 0, 0), dump=True)
        return [_neighbour(body) for kind, body in replies if kind == RTM_NEWNEIGH]

    def set_neighbour(
        self,
        family: int,
        ifindex: int,
        *,
        lladdr: str,
        dst: str | None = None,
        state: int = NUD_PERMANENT,
        flags: int = 0,
        append: bool = False,
    ) -> None:
        """Add the entry (``append``: beside any others for the same address, as a VXLAN
        device keeps one per remote host), or replace what is there."""
        body = self._neighbour_request(family, ifindex, lladdr, dst, state, flags)
        mode = NLM_F_APPEND if append else NLM_F_REPLACE
        self._ask(RTM_NEWNEIGH, NLM_F_CREATE | mode, body)

    def delete_neighbour(
        self,
        family: int,
        ifindex: int,
        *,
        lladdr: str | None = None,
        dst: str | None = None,
        state: int = NUD_PERMANENT,
        flags: int = 0,
    ) -> None:
        body = self._neighbour_request(family, ifindex, lladdr, dst, state, flags)
        self._ask(RTM_DELNEIGH, 0, body)

    @staticmethod
    def _neighbour_request(
        family: int, ifindex: int, lladdr: str | None, dst: str | None, state: int, flags: int
    ) -> bytes:
        body = _ND.pack(family, ifindex, state, flags, 0)
        if dst is not None:
            body += attr(NDA_DST, _ipv4(dst))
        if lladdr is not None:
            body += attr(NDA_LLADDR, _mac(lladdr))
        return body

    # Routes

    def replace_default_route(self, gateway: str) -> None:
        body = _RT.pack(
            socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        ) + attr(RTA_GATEWAY, _ipv4(gateway))
        self._ask(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)
