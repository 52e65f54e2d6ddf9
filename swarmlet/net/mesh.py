"""The ingress routing mesh, in the host's own network namespace: every host answers on every
published port and spreads the connections over the service's tasks on the ``ingress``
network, wherever they run.

One table, ``ip swarmlet-mesh``, replaced as a whole on every change::

    table ip swarmlet-mesh {
        chain published {   # what each published port leads to
            tcp dport 8080 dnat to numgen random mod 3 map { 0 : 10.255.0.5, ... } : 80
        }
        chain prerouting {  # nat: connections arriving from outside
            fib daddr type local jump published
        }
        chain output {      # nat: connections made on the host itself, 127.0.0.1 included
            fib daddr type local jump published
        }
        chain postrouting { # nat: which connections leave with the host's address
            ct status dnat oifname "swlbr4096" ip daddr { <remote tasks> } masquerade
            ct status dnat oifname "swlbr4096" ip saddr 127.0.0.0/8 masquerade
            ct status dnat oifname "swlbr4096" iifname "swlbr4096" masquerade
            ip saddr { <overlay subnets> } oifname != "swlbr*" masquerade
        }
        chain input {       # filter: ports with no task; nothing from outside to 127.0.0.0/8
            tcp dport 8081 reject with tcp reset
            iifname != "lo" ip daddr 127.0.0.0/8 ct state invalid,new drop
        }
    }

Source addresses: a connection to a task on another host is masqueraded, so the task's reply
comes back through this host (which undoes the NAT). A connection to a task on this host is
not: the task sees the client's real address (Swarm cannot, moby#25526), and its reply comes
back anyway because the task's default route is this host's own ingress address. Two cases
need the masquerade even for a local task: connections from 127.0.0.1 (a task cannot answer
127.0.0.1), and connections from a task on this host's ingress network itself (its reply would
go straight to the client over the bridge, past the NAT). Connections to 127.0.0.1 need
``route_localnet`` (``MESH_SYSCTLS``); the input rule keeps that from opening 127.0.0.1 to the
network (as kube-proxy does since CVE-2020-8558).

Ports published in ``mode=host`` are not in the mesh.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from swarmlet.net import nft
from swarmlet.net.names import bridge_name
from swarmlet.net.nft import Json
from swarmlet.protocol import NetworkState, PublishedPort

TABLE = "swarmlet-mesh"

# Every overlay bridge's name starts so (see names.bridge_name); nft matches it as a wildcard.
OVERLAY_INTERFACES = bridge_name(0).removesuffix("0") + "*"

# What the mesh needs of the kernel, in the host's namespace (keys are paths under /proc/sys,
# as in overlay.py): forwarding, and routing connections from 127.0.0.1 off the loopback.
MESH_SYSCTLS: Mapping[str, str] = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/route_localnet": "1",
}


def mesh_ruleset(
    published: Sequence[PublishedPort],
    host_addresses: Sequence[str],
    ingress_bridge: str,
    service_names: Mapping[str, str] | None = None,
) -> Json:
    """The whole ``ip swarmlet-mesh`` table.

    ``host_addresses`` are this host's own addresses on its overlay networks, in CIDR notation
    (``NetworkView.local_address``, the ingress network's among them; leave out internal
    networks): traffic from their subnets that leaves the host through an interface that is not
    an overlay bridge is masqueraded. ``ingress_bridge`` is this host's bridge of the ingress
    network ('' when the host has none: then nothing is published). ``service_names``
    (service ID → name) only make the comments readable.
    """
    names = service_names or {}
    # Without an ingress network here, nothing can be published.
    ports = sorted(published, key=lambda port: (port.protocol, port.published_port))
    ports = ports if ingress_bridge else []
    commands = [
        *nft.replace_table(TABLE),
        nft.regular_chain(TABLE, "published"),
        nft.base_chain(TABLE, "prerouting", "nat", "prerouting", nft.DSTNAT),
        nft.base_chain(TABLE, "output", "nat", "output", nft.DSTNAT),
        nft.base_chain(TABLE, "postrouting", "nat", "postrouting", nft.SRCNAT),
        nft.base_chain(TABLE, "input", "filter", "input", nft.FILTER),
    ]
    for port in ports:
        commands += _publish(port, _label(port, names))
    for chain in ("prerouting", "output"):
        commands.append(
            nft.rule(TABLE, chain, [nft.is_local_destination(), {"jump": {"target": "published"}}])
        )
    if ingress_bridge:
        commands += _mesh_masquerades(ports, ingress_bridge)
    commands += _outbound_masquerade(host_addresses)
    commands.append(_loopback_guard())
    return nft.ruleset(commands)


def mesh_for(state: NetworkState) -> Json:
    """The mesh of a host from its network state (an empty mesh without an ingress network)."""
    ingress = next((view for view in state.networks if view.ingress), None)
    addresses = [
        view.local_address for view in state.networks if view.local_address and not view.internal
    ]
    names = {service.id: service.name for view in state.networks for service in view.services}
    bridge = bridge_name(ingress.vni) if ingress is not None else ""
    published = state.published if ingress is not None else []
    return mesh_ruleset(published, addresses, bridge, names)


def remove_mesh_ruleset() -> Json:
    return nft.delete_table(TABLE)


async def remove_mesh() -> None:
    """Remove the mesh from this namespace: no rule of it is left."""
    await nft.apply(remove_mesh_ruleset())


def _publish(port: PublishedPort, label: str) -> list[Json]:
    to_port = nft.match(nft.payload(port.protocol, "dport"), port.published_port)
    backends = nft.sorted_addresses(backend.ip for backend in port.backends)
    if not backends:
        # Nothing to translate: the connection goes on to the input hook, where it is refused.
        return [nft.rule(TABLE, "input", [to_port, nft.refuse(port.protocol)], f"{label}: no task")]
    spread = nft.dnat_spread(backends, port.target_port)
    return [nft.rule(TABLE, "published", [to_port, spread], label)]


def _mesh_masquerades(ports: Sequence[PublishedPort], ingress_bridge: str) -> list[Json]:
    """The mesh connections that leave with this host's ingress address (see above)."""
    dnatted = nft.match(nft.ct("status"), "dnat", op="in")
    on_bridge = nft.match(nft.meta("oifname"), ingress_bridge)
    masquerades = []
    remote = nft.sorted_addresses(
        backend.ip for port in ports for backend in port.backends if not backend.local
    )
    if remote:
        to_remote = nft.match(nft.payload("ip", "daddr"), nft.one_or_set(remote))
        masquerades.append(
            _masquerade([dnatted, on_bridge, to_remote], "mesh: to tasks on other hosts")
        )
    from_loopback = nft.match(nft.payload("ip", "saddr"), nft.prefix("127.0.0.0/8"))
    from_bridge = nft.match(nft.meta("iifname"), ingress_bridge)
    return [
        *masquerades,
        _masquerade([dnatted, on_bridge, from_loopback], "mesh: from 127.0.0.1 on this host"),
        _masquerade([dnatted, on_bridge, from_bridge], "mesh: from a task on this host"),
    ]


def _outbound_masquerade(host_addresses: Sequence[str]) -> list[Json]:
    subnets = _subnets(host_addresses)
    if not subnets:
        return []
    from_overlay = nft.match(
        nft.payload("ip", "saddr"), nft.one_or_set([nft.prefix(s) for s in subnets])
    )
    leaving = nft.match(nft.meta("oifname"), OVERLAY_INTERFACES, op="!=")
    return [_masquerade([from_overlay, leaving], "overlay: tasks reaching out through this host")]


def _loopback_guard() -> Json:
    """With route_localnet on, the network could reach services listening on 127.0.0.1; only
    the replies of connections this host made may come in from outside to 127.0.0.0/8."""
    return nft.rule(
        TABLE,
        "input",
        [
            nft.match(nft.meta("iifname"), "lo", op="!="),
            nft.match(nft.payload("ip", "daddr"), nft.prefix("127.0.0.0/8")),
            nft.match(nft.ct("state"), ["new", "invalid"], op="in"),
            {"drop": None},
        ],
        "route_localnet: nothing from outside reaches 127.0.0.0/8",
    )


def _masquerade(matches: list[Json], comment: str) -> Json:
    return nft.rule(TABLE, "postrouting", [*matches, nft.masquerade()], comment)


def _label(port: PublishedPort, names: Mapping[str, str]) -> str:
    service = names.get(port.service_id, port.service_id)
    return f"{service} {port.protocol}/{port.published_port}->{port.target_port}"


def _subnets(addresses: Sequence[str]) -> list[str]:
    networks = {ipaddress.IPv4Interface(address).network for address in addresses}
    return [str(network) for network in sorted(networks)]
