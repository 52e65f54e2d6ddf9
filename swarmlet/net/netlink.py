"""The thin driver of the overlay plans: reads a host's overlay state from the kernel and carries
out ``swarmlet.net.overlay`` operations, with pyroute2's ``IPRoute`` and ``/proc/sys``.

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
from typing import Any, TypeVar

from swarmlet.errors import NameConflict, NotFound, SwarmletError, Unavailable
from swarmlet.net.iproute import IPRoute, NetlinkError
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
from swarmlet.protocol import NetworkView

T = TypeVar("T")

IFF_UP = 0x1
NUD_PERMANENT = 0x80
CLONE_NEWNET = 0x40000000
SYSCTL_ROOT = Path("/proc/sys")

_NOT_FOUND = {errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL}


# -- errors ---------------------------------------------------------------------------------


def translate(exc: Exception, what: str) -> SwarmletError:
    """The swarmlet error for a netlink or OS error met while doing ``what``."""
    code = _errno(exc)
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
    except (NetlinkError, OSError) as exc:
        raise translate(exc, what) from exc


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, NetlinkError):
        return int(exc.code)
    return getattr(exc, "errno", None)


@contextmanager
def tolerating(*codes: int) -> Iterator[None]:
    """Ignore these errno values: an add that finds the thing there, a delete that does not."""
    try:
        yield
    except (NetlinkError, OSError) as exc:
        if _errno(exc) not in codes:
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


def index_of(ipr: Any, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NotFound(f"no link {name}")
    return int(found[0])


# -- sysctls --------------------------------------------------------------------------------


def read_sysctl(key: str) -> str | None:
    try:
        return (SYSCTL_ROOT / key).read_text().strip()
    except FileNotFoundError:
        return None


def write_sysctl(key: str, value: str) -> None:
    (SYSCTL_ROOT / key).write_text(value + "\n")


# -- reading --------------------------------------------------------------------------------


def read_state(ipr: Any) -> HostNetState:
    """The overlay links of the calling thread's namespace and what hangs off them."""
    names = {int(msg["index"]): str(msg.get("IFLA_IFNAME")) for msg in ipr.get_links()}
    ours = {index: name for index, name in names.items() if is_overlay_link(name)}
    links: dict[str, Link] = {}
    for msg in ipr.get_links():
        if int(msg["index"]) in ours:
            link = _link(msg, names)
            links[link.name] = link
    addresses: dict[str, set[str]] = {name: set() for name in links}
    for msg in ipr.get_addr(family=socket.AF_INET):
        name = ours.get(int(msg["index"]))
        if name is not None:
            addresses[name].add(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
    fdb: dict[str, set[tuple[str, str]]] = {
        name: set() for name, link in links.items() if link.kind == "vxlan"
    }
    for msg in ipr.fdb("dump"):
        name = ours.get(int(msg["ifindex"]))
        dst = msg.get("NDA_DST")
        if name in fdb and dst is not None:
            fdb[name].add((str(msg.get("NDA_LLADDR")).lower(), str(dst)))
    neighbours: dict[str, dict[str, str]] = {
        name: {} for name, link in links.items() if link.kind == "bridge"
    }
    for msg in ipr.neigh("dump", family=socket.AF_INET):
        name = ours.get(int(msg["ifindex"]))
        lladdr = msg.get("NDA_LLADDR")
        if name in neighbours and msg["state"] & NUD_PERMANENT and lladdr:
            neighbours[name][str(msg.get("NDA_DST"))] = str(lladdr).lower()
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


def _link(msg: Any, names: dict[int, str]) -> Link:
    info = msg.get("IFLA_LINKINFO")
    kind = str(info.get("IFLA_INFO_KIND")) if info is not None else ""
    master = msg.get("IFLA_MASTER")
    address = msg.get("IFLA_ADDRESS")
    link = Link(
        name=str(msg.get("IFLA_IFNAME")),
        kind=kind,
        mtu=int(msg.get("IFLA_MTU")),
        up=bool(msg["flags"] & IFF_UP),
        master=names.get(int(master)) if master else None,
        mac=str(address).lower() if address else None,
    )
    data = info.get("IFLA_INFO_DATA") if info is not None else None
    if kind == "vxlan" and data is not None:
        return replace(
            link,
            vni=data.get("IFLA_VXLAN_ID"),
            local=data.get("IFLA_VXLAN_LOCAL"),
            port=data.get("IFLA_VXLAN_PORT"),
            learning=bool(data.get("IFLA_VXLAN_LEARNING")),
        )
    return link


# -- executing ------------------------------------------------------------------------------


def execute(ipr: Any, ops: Sequence[Op]) -> None:
    """Carry out ``ops`` in order; the first that fails raises (translated), and the next
    plan, made from what the kernel then holds, picks up from there."""
    for op in ops:
        with netlink_errors(_describe(op)):
            _execute(ipr, op)


def _describe(op: Op) -> str:
    fields = ", ".join(f"{key}={value}" for key, value in op.__dict__.items())
    return f"{type(op).__name__}({fields})"


def _execute(ipr: Any, op: Op) -> None:
    match op:
        case CreateLink(link=link):
            ipr.link("add", **_create_args(link))
        case DeleteLink(name=name):
            with tolerating(errno.ENODEV):
                ipr.link("del", index=index_of(ipr, name))
        case SetLink():
            _set_link(ipr, op)
        case AddAddress(link=link, cidr=cidr):
            address, _, prefix = cidr.partition("/")
            with tolerating(errno.EEXIST):
                ipr.addr("add", index=index_of(ipr, link), address=address, prefixlen=int(prefix))
        case DeleteAddress(link=link, cidr=cidr):
            address, _, prefix = cidr.partition("/")
            with tolerating(errno.EADDRNOTAVAIL, errno.ENOENT):
                ipr.addr("del", index=index_of(ipr, link), address=address, prefixlen=int(prefix))
        case AddFdb(link=link, mac=mac, dst=dst):
            with tolerating(errno.EEXIST):
                ipr.fdb("append", ifindex=index_of(ipr, link), lladdr=mac, dst=dst)
        case DeleteFdb(link=link, mac=mac, dst=dst):
            with tolerating(errno.ENOENT):
                ipr.fdb("del", ifindex=index_of(ipr, link), lladdr=mac, dst=dst)
        case SetNeighbour(link=link, ip=ip, mac=mac):
            ipr.neigh(
                "replace", ifindex=index_of(ipr, link), dst=ip, lladdr=mac, state=NUD_PERMANENT
            )
        case DeleteNeighbour(link=link, ip=ip):
            with tolerating(errno.ENOENT):
                ipr.neigh("del", ifindex=index_of(ipr, link), dst=ip)
        case SetSysctl(key=key, value=value):
            write_sysctl(key, value)


def _create_args(link: Link) -> dict[str, Any]:
    args: dict[str, Any] = {"ifname": link.name, "kind": link.kind, "mtu": link.mtu}
    if link.mac is not None:
        args["address"] = link.mac
    if link.kind == "vxlan":
        args.update(
            vxlan_id=link.vni,
            vxlan_local=link.local,
            vxlan_port=link.port,
            vxlan_learning=int(bool(link.learning)),
        )
    return args


def _set_link(ipr: Any, op: SetLink) -> None:
    args: dict[str, Any] = {"index": index_of(ipr, op.name)}
    if op.mtu is not None:
        args["mtu"] = op.mtu
    if op.mac is not None:
        args["address"] = op.mac
    if op.master is not None:
        args["master"] = index_of(ipr, op.master)
    if op.up is not None:
        args["state"] = "up" if op.up else "down"
    ipr.link("set", **args)


# -- the entry points -----------------------------------------------------------------------


def sync_host(views: Sequence[NetworkView], host_addr: str) -> list[Op]:
    """Read, plan, execute (blocking); returns the operations carried out."""
    with netlink_errors("opening netlink"), IPRoute() as ipr:
        with netlink_errors("reading the overlay state"):
            current = read_state(ipr)
        ops = plan_host(views, host_addr, current)
        execute(ipr, ops)
    return ops


async def program_host(views: Sequence[NetworkView], host_addr: str) -> list[Op]:
    """Make this host's kernel hold what ``views`` want (the overlay networks it takes part
    in, ``host_addr`` its underlay address); returns the operations it took. Calls must not
    overlap: the caller runs them one at a time."""
    return await asyncio.to_thread(sync_host, list(views), host_addr)


async def read_host_state() -> HostNetState:
    def read() -> HostNetState:
        with netlink_errors("reading the overlay state"), IPRoute() as ipr:
            return read_state(ipr)

    return await asyncio.to_thread(read)
