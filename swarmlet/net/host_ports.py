"""Ports published in ``mode=host`` by tasks on an overlay: this host's addresses (127.0.0.1
included) forward the port to the task's address, on this host only.

The engine hands a container's port bindings to its network driver
(``ProgramExternalConnectivity``), which for a container on an overlay is swarmlet's plugin; it
comes here. One table, ``ip swarmlet-hostports``, replaced as a whole on every change::

    table ip swarmlet-hostports {
        chain published {   # each bound port: to its task
            tcp dport 8080 dnat to 10.0.1.5:80
        }
        chain prerouting {  # nat: connections arriving from outside
            fib daddr type local jump published
        }
        chain output {      # nat: connections made on the host itself
            fib daddr type local jump published
        }
        chain postrouting { # nat: from 127.0.0.1, which a task cannot answer
            ct status dnat ip saddr 127.0.0.0/8 ip daddr { 10.0.1.5 } masquerade
        }
    }

The task's reply needs no other rule: its default route is this host's address on its first
network. (On the engine's default bridge — a task on no overlay — the engine binds the ports
itself.)
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass

from swarmlet.net import nft
from swarmlet.net.nft import Json

TABLE = "swarmlet-hostports"

# libnetwork's numbers for a binding's protocol (types.Protocol), as the engine sends them.
PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp"}


@dataclass(frozen=True, order=True)
class HostPort:
    """One bound port: the host's ``host_port`` forwarded to ``address:port``."""

    protocol: str
    host_port: int
    address: str
    port: int


def host_ports_ruleset(ports: Iterable[HostPort]) -> Json:
    bound = sorted(set(ports))
    commands = [
        *nft.replace_table(TABLE),
        nft.regular_chain(TABLE, "published"),
        nft.base_chain(TABLE, "prerouting", "nat", "prerouting", nft.DSTNAT),
        nft.base_chain(TABLE, "output", "nat", "output", nft.DSTNAT),
        nft.base_chain(TABLE, "postrouting", "nat", "postrouting", nft.SRCNAT),
    ]
    for port in bound:
        to_port = nft.match(nft.payload(port.protocol, "dport"), port.host_port)
        label = f"{port.protocol}/{port.host_port}->{port.address}:{port.port}"
        commands.append(
            nft.rule(
                TABLE, "published", [to_port, nft.dnat_spread([port.address], port.port)], label
            )
        )
    for chain in ("prerouting", "output"):
        commands.append(
            nft.rule(TABLE, chain, [nft.is_local_destination(), {"jump": {"target": "published"}}])
        )
    addresses = nft.sorted_addresses(port.address for port in bound)
    if addresses:
        matches = [
            nft.match(nft.ct("status"), "dnat", op="in"),
            nft.match(nft.payload("ip", "saddr"), nft.prefix("127.0.0.0/8")),
            nft.match(nft.payload("ip", "daddr"), nft.one_or_set(addresses)),
        ]
        commands.append(
            nft.rule(TABLE, "postrouting", [*matches, nft.masquerade()], "from 127.0.0.1")
        )
    return nft.ruleset(commands)


def remove_host_ports_ruleset() -> Json:
    return nft.delete_table(TABLE)


def free_port(protocol: str) -> int:
    """A port nothing on this host listens on now, for a binding published as 0 (the kernel's
    choice among the ephemeral ports, as the engine's own allocator would make one)."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


async def remove_host_ports() -> None:
    """Remove the table from this namespace: no rule of it is left."""
    await nft.apply(remove_host_ports_ruleset())
