"""VIP load balancing inside a task's network namespace — what Swarm does with IPVS in each
container's sandbox, done with an nftables ``numgen`` map instead.

One table, ``ip swarmlet``, replaced as a whole on every change::

    table ip swarmlet {
        chain vip {        # nat output: a new connection to a VIP goes to one of its tasks
            ip daddr 10.0.1.2 tcp dport 80 dnat to numgen random mod 3 map { 0 : 10.0.1.5, ... }
        }
        chain refuse {     # filter output: still addressed to a VIP after nat → no task for it
            ip daddr 10.0.1.3 reject with tcp reset comment "db: no task"
            ip daddr 10.0.1.3 reject comment "db: no task"
        }
    }

Only the first packet of a connection passes the nat chain; conntrack sends the rest of it to
the same task, so a task that goes away keeps the connections it had and gets no new ones.
Destination ports are kept. A service that lists its ports is balanced on those only; a
connection to its VIP on any other port is refused, as is every connection to a VIP with no
task, so clients fail at once instead of waiting for a timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from swarmlet.net import nft
from swarmlet.net.nft import Json
from swarmlet.protocol import ServiceEntry

TABLE = "swarmlet"


def vip_ruleset(services: Sequence[ServiceEntry]) -> Json:
    """The whole ``ip swarmlet`` table for a task that sees ``services`` (those of all its
    networks); services in dnsrr mode (no VIP) have no rule."""
    balanced = [service for service in _by_name(services) if service.vip is not None]
    commands = [
        *nft.replace_table(TABLE),
        nft.base_chain(TABLE, "vip", "nat", "output", nft.DSTNAT),
        nft.base_chain(TABLE, "refuse", "filter", "output", nft.FILTER),
    ]
    for service in balanced:
        commands += _balance(service)
    for service in balanced:
        commands += _refuse(service)
    return nft.ruleset(commands)


def remove_vip_ruleset() -> Json:
    return nft.delete_table(TABLE)


async def remove_vip_in_netns(pid: int) -> None:
    """Remove the table from the namespace of process ``pid`` (a namespace that outlives its
    task would otherwise keep balancing to it)."""
    await nft.apply_in_netns(pid, remove_vip_ruleset())


def _by_name(services: Sequence[ServiceEntry]) -> list[ServiceEntry]:
    return sorted(services, key=lambda service: (service.name, service.id))


def _balance(service: ServiceEntry) -> list[Json]:
    assert service.vip is not None
    backends = nft.sorted_addresses(service.backends)
    if not backends:
        return []
    to_vip = nft.match(nft.payload("ip", "daddr"), service.vip)
    spread = nft.dnat_spread(backends)
    if not service.ports:
        return [nft.rule(TABLE, "vip", [to_vip, spread], service.name)]
    return [
        nft.rule(
            TABLE,
            "vip",
            [to_vip, nft.match(nft.payload(protocol, "dport"), nft.one_or_set(ports)), spread],
            f"{service.name} {protocol}",
        )
        for protocol, ports in _ports_by_protocol(service)
    ]


def _refuse(service: ServiceEntry) -> list[Json]:
    """Refusals for what the nat chain leaves addressed to the VIP: everything when the
    service has no task, the ports it does not balance otherwise."""
    assert service.vip is not None
    if service.backends and not service.ports:
        return []  # every connection is balanced: nothing is left to refuse
    why = "no task" if not service.backends else "port not published"
    to_vip = nft.match(nft.payload("ip", "daddr"), service.vip)
    comment = f"{service.name}: {why}"
    return [
        nft.rule(
            TABLE,
            "refuse",
            [to_vip, nft.match(nft.meta("l4proto"), "tcp"), nft.refuse("tcp")],
            comment,
        ),
        nft.rule(TABLE, "refuse", [to_vip, nft.refuse("icmp")], comment),
    ]


def _ports_by_protocol(service: ServiceEntry) -> list[tuple[str, list[int]]]:
    pairs = sorted(set(service.ports))
    return [
        (protocol, [port for _, port in group])
        for protocol, group in groupby(pairs, key=lambda pair: pair[0])
    ]
