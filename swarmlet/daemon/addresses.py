"""Which address a node advertises when it was not told."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess

from swarmlet.errors import InvalidSpec

DEFAULT_PORT = 2377


def split_addr(addr: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``ip``, ``ip:port`` or ``:port`` → (ip or '', port)."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    try:
        return host, int(port)
    except ValueError as exc:
        raise InvalidSpec(f"invalid address {addr!r}: the port must be a number") from exc


def _ipv4_addresses(*selector: str) -> list[str] | None:
    """The IPv4 addresses `ip addr show SELECTOR` lists, in interface order; None when it
    refuses the selector (no such interface)."""
    done = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", *selector],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return None
    return [
        str(info["local"])
        for link in json.loads(done.stdout or "[]")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    ]


def local_addresses() -> list[str]:
    """The host's global-scope IPv4 addresses, in interface order."""
    found = _ipv4_addresses("scope", "global")
    if found is None:
        raise InvalidSpec("could not list this host's addresses (`ip addr` failed)")
    return found


BAD_ADVERTISE_ADDR = (
    "advertise address must be a non-zero IP address or network interface (with optional port"
    " number)"
)
BAD_DATA_PATH_ADDR = (
    "data path address must be a non-zero IP address or network interface (without a port number)"
)


def interface_address(name: str) -> str | None:
    """The IPv4 address of the network interface ``name`` (moby's resolveInterfaceAddr);
    None when there is no such interface."""
    found = _ipv4_addresses("dev", name)
    if found is None:
        return None
    if not found:
        raise InvalidSpec(f"interface {name} has no usable IPv4 or IPv6 address")
    if len(found) > 1:
        raise InvalidSpec(
            f"interface {name} has more than one IPv4 address ({found[0]} and {found[1]})"
        )
    return found[0]


def _ip_or_interface(value: str, error: str) -> str:
    """An IP that is not 0.0.0.0 as it is, or an interface's address, as moby resolves
    ``--advertise-addr`` and ``--data-path-addr``."""
    try:
        if not ipaddress.ip_address(value).is_unspecified:
            return value
    except ValueError:
        address = interface_address(value)
        if address is not None:
            return address
    raise InvalidSpec(error)


def data_path_addr(value: str) -> str:
    """The address for the overlay's VXLAN traffic (``--data-path-addr``); '' when not given,
    and the advertise address is used."""
    return _ip_or_interface(value, BAD_DATA_PATH_ADDR) if value else ""


def route_source(host: str) -> str:
    """The address this host sends from to reach ``host``: the one a manager sees a joining
    node connect from. A UDP socket's connect only asks the kernel for the route; nothing is
    sent."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, DEFAULT_PORT))
        except OSError as exc:
            raise InvalidSpec(f"could not find a route to the manager {host}: {exc}") from exc
        return str(probe.getsockname()[0])


def advertise_addr(advertise: str, listen: str, towards: str | None = None) -> str:
    """The IP to advertise: the one given (an IP or an interface), else the listen address's
    IP; else, joining (``towards`` a manager), the address the manager will see the node
    connect from, as Swarm's manager takes it; else the only global address of the host
    (several → the user must choose, as in Swarm)."""
    if advertise:
        host, _ = split_addr(advertise)
        return _ip_or_interface(host or advertise, BAD_ADVERTISE_ADDR)
    host, _ = split_addr(listen) if listen else ("", 0)
    if host and host != "0.0.0.0":
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise InvalidSpec(f"advertise address must be an IP address: {host!r}") from exc
        return host
    if towards:
        return route_source(towards)
    found = local_addresses()
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidSpec("could not find an address to advertise: use --advertise-addr")
    raise InvalidSpec(
        "could not choose an IP address to advertise since this system has multiple addresses"
        f" ({', '.join(found)}): use --advertise-addr"
    )
