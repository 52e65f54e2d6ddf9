"""Published ports, decided without I/O.

A service's ``Endpoint.Ports`` are its spec's ports as allocated: an ingress-mode port
published without a number gets the lowest free one of 30000-32767, and keeps it across
updates while the spec still publishes that target port the same way. Host-mode ports are
copied as they are (the engine picks a free host port for one without a number).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

from swarmlet.errors import InvalidSpec
from swarmlet.models import PortConfig, Service

FIRST_DYNAMIC_PORT = 30000
LAST_DYNAMIC_PORT = 32767
INGRESS = "ingress"

PortKey = tuple[int, str]


def spec_ports(service: Service) -> list[PortConfig]:
    endpoint_spec = service.spec.endpoint_spec
    return list(endpoint_spec.ports or ()) if endpoint_spec is not None else []


def publishes_ingress(ports: Iterable[PortConfig]) -> bool:
    """Whether the ports need the ingress network (SwarmKit's IsIngressNetworkNeeded)."""
    return any(port.publish_mode == INGRESS for port in ports)


def held_ports(services: Iterable[Service]) -> dict[PortKey, str]:
    """Every published (port, protocol) to the ID of the service that holds it: the numbers
    its spec asks for and those allocated in its endpoint."""
    held: dict[PortKey, str] = {}
    for service in services:
        allocated = list(service.endpoint.ports or ()) if service.endpoint else []
        for port in [*spec_ports(service), *allocated]:
            if port.published_port:
                held.setdefault((port.published_port, port.protocol), service.id)
    return held


def _same_port(wanted: PortConfig, had: PortConfig) -> bool:
    return (
        wanted.target_port == had.target_port
        and wanted.protocol == had.protocol
        and wanted.publish_mode == had.publish_mode
        and wanted.name == had.name
    )


def allocate_ports(
    wanted: Sequence[PortConfig], current: Sequence[PortConfig], taken: Container[PortKey]
) -> list[PortConfig]:
    """The endpoint ports for a spec's ports.

    ``current`` are the service's ports as allocated before (their dynamic numbers are kept);
    ``taken`` holds the ports other services hold. Raises InvalidSpec when no dynamic port is
    left.
    """
    chosen: set[PortKey] = {
        (port.published_port, port.protocol) for port in wanted if port.published_port
    }
    reusable = [
        p
        for p in current
        if p.publish_mode == INGRESS
        and p.published_port
        and FIRST_DYNAMIC_PORT <= p.published_port <= LAST_DYNAMIC_PORT
    ]
    # Numbers kept first, so that a port added before one never takes its number.
    kept: dict[int, int] = {}
    for index, port in enumerate(wanted):
        if not port.published_port and port.publish_mode == INGRESS:
            number = _reuse(port, reusable, chosen, taken)
            if number is not None:
                kept[index] = number
                chosen.add((number, port.protocol))
    result: list[PortConfig] = []
    for index, port in enumerate(wanted):
        if port.published_port or port.publish_mode != INGRESS:
            result.append(port)
            continue
        number = kept.get(index)
        if number is None:
            number = _lowest_free(port.protocol, chosen, taken)
            chosen.add((number, port.protocol))
        result.append(port.replace(published_port=number))
    return result


def _reuse(
    port: PortConfig, reusable: list[PortConfig], chosen: set[PortKey], taken: Container[PortKey]
) -> int | None:
    for had in reusable:
        assert had.published_port is not None
        key = (had.published_port, had.protocol)
        if _same_port(port, had) and key not in chosen and key not in taken:
            reusable.remove(had)
            return had.published_port
    return None


def _lowest_free(protocol: str, chosen: set[PortKey], taken: Container[PortKey]) -> int:
    for number in range(FIRST_DYNAMIC_PORT, LAST_DYNAMIC_PORT + 1):
        key = (number, protocol)
        if key not in chosen and key not in taken:
            return number
    raise InvalidSpec(
        f"no published port left in {FIRST_DYNAMIC_PORT}-{LAST_DYNAMIC_PORT} for {protocol}"
    )
