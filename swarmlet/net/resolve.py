"""Swarm's service discovery rules as pure functions: which names the embedded DNS owns, what they
resolve to, and which networks a query is scoped to. No sockets, no clock; randomness is passed in.

A task sees the services of the networks it is attached to, and only those:

- ``<service>`` → the service's VIP on that network, or the IPs of its running tasks when the
  service has no VIP (``--endpoint-mode dnsrr``);
- ``tasks.<service>`` → the IPs of its running tasks;
- a network alias of the service resolves like its name (``<alias>``, ``tasks.<alias>``);
- a plain container on the network (an attachment, ``docker run --network``) answers to its
  name and each of its aliases with its address, as Docker's DNS answers for a container on a
  user network (no ``tasks.`` form: it is no service);
- ``<name>.<network>`` looks ``<name>`` up on that one network (network names may hold dots:
  ``a.b.c`` is tried as ``a.b.c`` on every network, then ``a.b`` on ``c``, then ``a`` on ``b.c``,
  as Docker does).

Names are case-insensitive and may end with a dot. A name found on several of the asker's
networks answers with every address (each once). The ingress network is consulted last, only
when no other network knows the name: Docker orders the ingress endpoint after the user's
overlays, and its VIPs are the routing mesh's, not the ones a task should dial.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator, Mapping, Sequence

from swarmlet.protocol import AttachmentEntry, NetworkView, ServiceEntry

# Query types, as numbers so this module does not depend on a DNS library (dns.rdatatype.A, …).
A = 1
TASKS_PREFIX = "tasks."


def resolve(
    name: str,
    qtype: int,
    asker_networks: Sequence[NetworkView],
    *,
    rng: random.Random | None = None,
) -> list[str] | None:
    """The addresses ``name`` has for a task on ``asker_networks``.

    ``None``: the name is not ours (forward it, or NXDOMAIN). A list: the name is ours; empty
    when there is no address to give — a query type other than A (AAAA included, so a client
    falls back to IPv4 at once) or a service with no running task. With ``rng``, an answer of
    several addresses is shuffled, so clients that take the first one spread over the tasks;
    without it, the order is the views' (deterministic, for tests).
    """
    wanted = _normalize(name)
    if not wanted:
        return None
    for label, network in _candidates(wanted):
        networks = [
            view for view in asker_networks if network is None or view.name.lower() == network
        ]
        found = _lookup(label, [view for view in networks if not view.ingress])
        if found is None:
            found = _lookup(label, [view for view in networks if view.ingress])
        if found is None:
            continue
        if qtype != A:
            return []
        if rng is not None and len(found) > 1:
            rng.shuffle(found)
        return found
    return None


def scope(
    source: str,
    views: Sequence[NetworkView],
    tasks: Mapping[str, Sequence[str]],
) -> list[NetworkView] | None:
    """The networks a query from ``source`` may see, or ``None`` if it comes from a stranger.

    ``tasks`` maps a task's address to the IDs of the networks it is on, in attachment order. A
    source that is not a known task is scoped to every network whose subnet holds it (a task the
    host has not been told about yet, or the host itself on its overlay address).
    """
    network_ids = tasks.get(source)
    if network_ids is not None:
        by_id = {view.id: view for view in views}
        return [by_id[network_id] for network_id in network_ids if network_id in by_id]
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return None
    inside = [view for view in views if _contains(view.subnet, address)]
    return inside or None


def _normalize(name: str) -> str:
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def _candidates(name: str) -> Iterator[tuple[str, str | None]]:
    """``a.b.c`` → (``a.b.c``, any network), (``a.b``, ``c``), (``a``, ``b.c``)."""
    yield name, None
    end = len(name)
    while (dot := name.rfind(".", 0, end)) > 0:
        yield name[:dot], name[dot + 1 :]
        end = dot


def _lookup(name: str, networks: Sequence[NetworkView]) -> list[str] | None:
    """Every address ``name`` has on ``networks``, each once; ``None`` if none of them knows it."""
    found: list[str] | None = None
    for view in networks:
        for service in view.services:
            addresses = _addresses(name, service)
            if addresses is None:
                continue
            if found is None:
                found = []
            found.extend(address for address in addresses if address not in found)
        for attachment in view.attachments:
            if not _is_named(name, attachment):
                continue
            if found is None:
                found = []
            if attachment.address not in found:
                found.append(attachment.address)
    return found


def _addresses(name: str, service: ServiceEntry) -> list[str] | None:
    for known in (service.name, *service.aliases):
        if name == known.lower():
            return [service.vip] if service.vip else list(service.backends)
        if name == TASKS_PREFIX + known.lower():
            return list(service.backends)
    return None


def _is_named(name: str, attachment: AttachmentEntry) -> bool:
    return any(name == known.lower() for known in (attachment.name, *attachment.aliases) if known)


def _contains(subnet: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return address in ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return False
