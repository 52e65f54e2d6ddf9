"""The thin driver of the overlay plans: reads a host's overlay state from the kernel and carries
out ``swarmlet.net.overlay`` operations, with rtnetlink (``swarmlet.net.rtnetlink``) and
``/proc/sys``.

Everything here is blocking and works in the network namespace of the calling thread (the
daemon's own, which is the host's); the async entry points run it on a worker thread. Code that
must work in another namespace (a task's) runs in ``in_netns``, on a thread of its own that
ends with the work, so no thread of the daemon ever changes namespace.

Errors from the kernel are translated here: a missing link or process becomes ``NotFound``,
an existing one ``NameConflict``, anything else ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from swarmlet.errors import NameConflict, NotFound, SwarmletError, Unavailable
from swarmlet.net.names import VXLAN_PORT
from swarmlet.net.overlay import (
    IP_FORWARD,
    AddAddress,
    AddFdb,
    CreateLink,
    DeleteAddress,
    DeleteFdb,
    DeleteLink,
    DeleteNeighbour,
    HostNetState,
    Link,
    Op,
    SetLink,
    SetNeighbour,
    SetSysctl,
    is_overlay_link,
    plan_host,
    rp_filter_key,
)
from swarmlet.net.rtnetlink import (
    AF_BRIDGE,
    IFF_UP,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    LinkMessage,
    Rtnetlink,
    Vxlan,
)
from swarmlet.protocol import NetworkView

T = TypeVar("T")

# A VXLAN device's forwarding entries are its own ("self", not its bridge's), never aged out.
FDB_STATE = NUD_NOARP | NUD_PERMANENT
FDB_FLAGS = NTF_SELF
CLONE_NEWNET = 0x40000000
SYSCTL_ROOT = Path("/proc/sys")

_NOT_FOUND = {errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL}


# -- errors ---------------------------------------------------------------------------------


def translate(exc: Exception, what: str) -> SwarmletError:
    """The swarmlet error for a netlink or OS error met while doing ``what``."""
    code = getattr(exc, "errno", None)
    reason = os.strerror(code) if code else str(exc)
    message = f"{what}: {reason}"
    if code in _NOT_FOUND:
        return NotFound(message)
    if code == errno.EEXIST:
        return NameConflict(message)
    return Unavailable(message)


@contextmanager
def netlink_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:  # NetlinkError among them
        raise translate(exc, what) from exc


@contextmanager
def tolerating(*codes: int) -> Iterator[None]:
    """Ignore these errno values: an add that finds the thing there, a delete that does not."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in codes:
            raise


# -- namespaces -----------------------------------------------------------------------------


def in_netns(path: str, work: Callable[[], T]) -> T:
    """Run ``work`` on a new thread that joins the network namespace at ``path`` (such as
    ``/proc/PID/ns/net``) and ends with it. Blocking; raises what ``work`` raised."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, os.strerror(code), path)
            finally:
                os.close(fd)
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"netns {path}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def index_of(rtnl: Rtnetlink, name: str) -> int:
    index = rtnl.link_index(name)
    if index is None:
        raise NotFound(f"no link {name}")
    return index


# -- sysctls --------------------------------------------------------------------------------


def read_sysctl(key: str) -> str | None:
    try:
        return (SYSCTL_ROOT / key).read_text().strip()
    except FileNotFoundError:
        return None


def write_sysctl(key: str, value: str) -> None:
    (SYSCTL_ROOT / key).write_text(value + "\n")


# -- reading --------------------------------------------------------------------------------


def read_state(rtnl: Rtnetlink) -> HostNetState:
    """The overlay links of the calling thread's namespace and what hangs off them."""
    every = rtnl.links()
    names = {message.index: message.name for message in every}
    ours = {index: name for index, name in names.items() if is_overlay_link(name)}
    links = {message.name: _link(message, names) for message in every if message.index in ours}
    addresses: dict[str, set[str]] = {name: set() for name in links}
    for address in rtnl.addresses():
        name = ours.get(address.index)
        if name is not None:
            addresses[name].add(f"{address.address}/{address.prefixlen}")
    fdb: dict[str, set[tuple[str, str]]] = {
        name: set() for name, link in links.items() if link.kind == "vxlan"
    }
    for entry in rtnl.neighbours(AF_BRIDGE):
        name = ours.get(entry.ifindex)
        if name in fdb and entry.dst is not None and entry.lladdr is not None:
            fdb[name].add((entry.lladdr, entry.dst))
    neighbours: dict[str, dict[str, str]] = {
        name: {} for name, link in links.items() if link.kind == "bridge"
    }
    for entry in rtnl.neighbours(socket.AF_INET):
        name = ours.get(entry.ifindex)
        if name in neighbours and entry.state & NUD_PERMANENT and entry.lladdr and entry.dst:
            neighbours[name][entry.dst] = entry.lladdr
    sysctls: dict[str, str] = {}
    for key in [IP_FORWARD, *(rp_filter_key(name) for name in neighbours)]:
        value = read_sysctl(key)
        if value is not None:
            sysctls[key] = value
    return HostNetState(
        links=links,
        addresses={name: frozenset(cidrs) for name, cidrs in addresses.items()},
        fdb={name: frozenset(entries) for name, entries in fdb.items()},
        neighbours=neighbours,
        sysctls=sysctls,
    )


def _link(message: LinkMessage, names: dict[int, str]) -> Link:
    link = Link(
        name=message.name,
        kind=message.kind,
        mtu=message.mtu or 0,
        up=bool(message.flags & IFF_UP),
        master=names.get(message.master) if message.master else None,
        mac=message.mac,
    )
    if message.vxlan is not None:
        vxlan = message.vxlan
        return replace(
            link, vni=vxlan.vni, local=vxlan.local, port=vxlan.port, learning=vxlan.learning
        )
    return link


# -- executing ------------------------------------------------------------------------------


def execute(rtnl: Rtnetlink, ops: Sequence[Op]) -> None:
    """Carry out ``ops`` in order; the first that fails raises (translated), and the next
    plan, made from what the kernel then holds, picks up from there."""
    for op in ops:
        with netlink_errors(_describe(op)):
            _execute(rtnl, op)


def _describe(op: Op) -> str:
    fields = ", ".join(f"{key}={value}" for key, value in op.__dict__.items())
    return f"{type(op).__name__}({fields})"


def _execute(rtnl: Rtnetlink, op: Op) -> None:
    match op:
        case CreateLink(link=link):
            vxlan = None
            if link.kind == "vxlan":
                vxlan = Vxlan(link.vni, link.local, link.port, bool(link.learning))
            rtnl.add_link(link.name, link.kind, mtu=link.mtu, mac=link.mac, vxlan=vxlan)
        case DeleteLink(name=name):
            with tolerating(errno.ENODEV):
                rtnl.delete_link(index_of(rtnl, name))
        case SetLink():
            master = index_of(rtnl, op.master) if op.master is not None else None
            index = index_of(rtnl, op.name)
            rtnl.set_link(index, mtu=op.mtu, mac=op.mac, master=master, up=op.up)
        case AddAddress(link=link, cidr=cidr):
            address, _, prefix = cidr.partition("/")
            with tolerating(errno.EEXIST):
                rtnl.add_address(index_of(rtnl, link), address, int(prefix))
        case DeleteAddress(link=link, cidr=cidr):
            address, _, prefix = cidr.partition("/")
            with tolerating(errno.EADDRNOTAVAIL, errno.ENOENT):
                rtnl.delete_address(index_of(rtnl, link), address, int(prefix))
        case AddFdb(link=link, mac=mac, dst=dst):
            with tolerating(errno.EEXIST):
                rtnl.set_neighbour(
                    AF_BRIDGE,
                    index_of(rtnl, link),
                    lladdr=mac,
                    dst=dst,
                    state=FDB_STATE,
                    flags=FDB_FLAGS,
                    append=True,
                )
        case DeleteFdb(link=link, mac=mac, dst=dst):
            with tolerating(errno.ENOENT):
                index = index_of(rtnl, link)
                rtnl.delete_neighbour(
                    AF_BRIDGE, index, lladdr=mac, dst=dst, state=FDB_STATE, flags=FDB_FLAGS
                )
        case SetNeighbour(link=link, ip=ip, mac=mac):
            rtnl.set_neighbour(socket.AF_INET, index_of(rtnl, link), lladdr=mac, dst=ip)
        case DeleteNeighbour(link=link, ip=ip):
            with tolerating(errno.ENOENT):
                rtnl.delete_neighbour(socket.AF_INET, index_of(rtnl, link), dst=ip)
        case SetSysctl(key=key, value=value):
            write_sysctl(key, value)


# -- the entry points -----------------------------------------------------------------------


def sync_host(views: Sequence[NetworkView], host_addr: str, port: int = VXLAN_PORT) -> list[Op]:
    """Read, plan, execute (blocking); returns the operations carried out."""
    with netlink_errors("opening netlink"), Rtnetlink() as rtnl:
        with netlink_errors("reading the overlay state"):
            current = read_state(rtnl)
        ops = plan_host(views, host_addr, current, port)
        execute(rtnl, ops)
    return ops


async def program_host(
    views: Sequence[NetworkView], host_addr: str, port: int = VXLAN_PORT
) -> list[Op]:
    """Make this host's kernel hold what ``views`` want (the overlay networks it takes part
    in, ``host_addr`` its underlay address, VXLAN on UDP ``port``); returns the operations it
    took. Calls must not overlap: the caller runs them one at a time."""
    return await asyncio.to_thread(sync_host, list(views), host_addr, port)


async def read_host_state() -> HostNetState:
    def read() -> HostNetState:
        with netlink_errors("reading the overlay state"), Rtnetlink() as rtnl:
            return read_state(rtnl)

    return await asyncio.to_thread(read)
