"""Which address a node advertises when it was not told."""

from __future__ import annotations

import ipaddress
import json
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


def local_addresses() -> list[str]:
    """The host's global-scope IPv4 addresses, in interface order."""
    output = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "scope", "global"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [
        info["local"]
        for link in json.loads(output or "[]")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    ]


def advertise_addr(advertise: str, listen: str) -> str:
    """The IP to advertise: the one given, else the listen address's IP, else the only
    global address of the host (several → the user must choose, as in Swarm)."""
    for candidate in (advertise, listen):
        host, _ = split_addr(candidate) if candidate else ("", 0)
        if host and host != "0.0.0.0":
            try:
                ipaddress.ip_address(host)
            except ValueError as exc:
                raise InvalidSpec(f"advertise address must be an IP address: {host!r}") from exc
            return host
    found = local_addresses()
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidSpec("could not find an address to advertise: use --advertise-addr")
    raise InvalidSpec(
        "could not choose an IP address to advertise since this system has multiple addresses"
        f" ({', '.join(found)}): use --advertise-addr"
    )
