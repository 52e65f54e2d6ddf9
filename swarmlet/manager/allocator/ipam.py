"""Subnets, VNIs and addresses of overlay networks, decided without I/O.

- A network without a subnet gets the lowest free subnet of the cluster's pools (10.0.0.0/8
  in /24s by default); ``ingress`` is made first, at ``swarm init``, so it gets 10.0.0.0/24.
- A given subnet must be IPv4, inside a private range (RFC 1918), and overlap no other
  network's; its gateway is its first host address unless one is given.
- VNIs are unique in the cluster: ``ingress`` has 4096, the others count from 4097.
- An address goes to a task, a service's VIP or a node's own endpoint: the lowest free host
  address of the subnet (or of its IPRange), never the network, broadcast or gateway address.
  ``AddressPool`` is the free set of one network during one allocation pass.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from swarmlet.errors import InvalidSpec
from swarmlet.models import (
    DEFAULT_POOLS,
    DEFAULT_SUBNET_SIZE,
    INGRESS_NAME,
    OVERLAY,
    VXLAN_OPTION,
    IPAMConfig,
    Network,
    NetworkIPAM,
)

INGRESS_VNI = 4096
FIRST_VNI = 4097
MAX_VNI = (1 << 24) - 1
# A subnet must leave room for at least one address besides its gateway.
MAX_PREFIX = 30
PRIVATE_RANGES = tuple(IPv4Network(r) for r in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

OVERLAP = "invalid pool request: Pool overlaps with other one on this address space"
POOLS_EXHAUSTED = (
    "could not find an available, non-overlapping IPv4 address pool among the defaults to"
    " assign to the network"
)


def parse_subnet(text: str) -> IPv4Network:
    try:
        subnet = ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidSpec(f"ipam configuration: invalid subnet {text}") from None
    if not isinstance(subnet, IPv4Network):
        raise InvalidSpec(f"ipam configuration: invalid subnet {text}: only IPv4 is supported")
    return subnet


def subnet_of(network: Network) -> IPv4Network | None:
    """The network's subnet, or None when it has none (or an unreadable one)."""
    try:
        return parse_subnet(network.subnet) if network.subnet else None
    except InvalidSpec:
        return None


def check_subnet(subnet: IPv4Network, networks: Iterable[Network]) -> None:
    """A subnet asked for by a user: private, not too small, overlapping nothing."""
    if not any(subnet.subnet_of(private) for private in PRIVATE_RANGES):
        raise InvalidSpec(
            f"invalid pool request: {subnet} is not inside a private address range"
            " (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
        )
    if subnet.prefixlen > MAX_PREFIX:
        raise InvalidSpec(f"invalid pool request: {subnet} is too small (at most /{MAX_PREFIX})")
    for other in networks:
        taken = subnet_of(other)
        if taken is not None and subnet.overlaps(taken):
            raise InvalidSpec(OVERLAP)


def next_subnet(
    networks: Iterable[Network],
    pools: Sequence[str] = DEFAULT_POOLS,
    size: int = DEFAULT_SUBNET_SIZE,
) -> IPv4Network:
    """The lowest subnet of ``size`` in the pools that overlaps no network's."""
    taken = sorted(s for s in (subnet_of(n) for n in networks) if s is not None)
    for pool_text in pools:
        pool = parse_subnet(pool_text)
        if size < pool.prefixlen:
            continue
        for candidate in pool.subnets(new_prefix=size):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    raise InvalidSpec(POOLS_EXHAUSTED)


def parse_gateway(text: str, subnet: IPv4Network) -> IPv4Address:
    try:
        gateway = ip_address(text.strip())
    except ValueError:
        raise InvalidSpec(f"ipam configuration: invalid gateway {text}") from None
    if not isinstance(gateway, IPv4Address) or gateway not in subnet:
        raise InvalidSpec(f"ipam configuration: subnet {subnet} does not contain gateway {text}")
    if gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidSpec(f"ipam configuration: invalid gateway {text} for subnet {subnet}")
    return gateway


def default_gateway(subnet: IPv4Network, ip_range: IPv4Network | None = None) -> IPv4Address:
    """The first host address (of the IPRange, when there is one)."""
    start = ip_range or subnet
    first = start.network_address
    if first == subnet.network_address:
        first += 1
    return first


def parse_range(text: str, subnet: IPv4Network) -> IPv4Network:
    ip_range = parse_subnet(text)
    if not ip_range.subnet_of(subnet):
        raise InvalidSpec(f"ipam configuration: subnet {subnet} does not contain range {text}")
    return ip_range


def next_vni(networks: Iterable[Network]) -> int:
    taken = {n.vni for n in networks}
    vni = FIRST_VNI
    while vni in taken:
        vni += 1
    if vni > MAX_VNI:
        raise InvalidSpec("no VXLAN network identifier left")
    return vni


def _requested_vni(network: Network) -> int | None:
    raw = network.options.get(VXLAN_OPTION)
    if raw is None or not raw.strip():
        return None
    try:
        vni = int(raw.split(",")[0])
    except ValueError:
        raise InvalidSpec(f"invalid {VXLAN_OPTION} {raw!r}: not a number") from None
    if not 1 <= vni <= MAX_VNI:
        raise InvalidSpec(f"invalid {VXLAN_OPTION} {raw!r}: out of range 1-{MAX_VNI}")
    return vni


def allocate_network(
    network: Network,
    existing: Sequence[Network],
    pools: Sequence[str] = DEFAULT_POOLS,
    size: int = DEFAULT_SUBNET_SIZE,
) -> Network:
    """The network with its subnet, gateway and VNI decided, or InvalidSpec saying why not.

    ``network.ipam.config`` holds what the user asked for (at most one config; empty: any
    subnet of the pools); ``existing`` are the cluster's other networks.
    """
    if len(network.ipam.config) > 1:
        raise InvalidSpec("ipam configuration: only one subnet per overlay network is supported")
    requested = network.ipam.config[0] if network.ipam.config else IPAMConfig()
    if requested.subnet:
        subnet = parse_subnet(requested.subnet)
        check_subnet(subnet, existing)
    else:
        if requested.gateway or requested.ip_range:
            raise InvalidSpec("ipam configuration: a gateway or range needs a subnet")
        subnet = next_subnet(existing, pools, size)
    ip_range = parse_range(requested.ip_range, subnet) if requested.ip_range else None
    if requested.gateway:
        gateway = parse_gateway(requested.gateway, subnet)
    else:
        gateway = default_gateway(subnet, ip_range)
    vni = _requested_vni(network)
    if vni is None:
        vni = next_vni(existing)
    elif any(other.vni == vni for other in existing):
        raise InvalidSpec(f"invalid {VXLAN_OPTION}: VNI {vni} is already in use")
    config = IPAMConfig(subnet=str(subnet), gateway=str(gateway), ip_range=requested.ip_range)
    ipam = NetworkIPAM(driver="default", config=[config], options=network.ipam.options)
    return network.replace(ipam=ipam, vni=vni)


def ingress_network(
    network_id: str, pools: Sequence[str] = DEFAULT_POOLS, size: int = DEFAULT_SUBNET_SIZE
) -> Network:
    """The ``ingress`` network that ``swarm init`` makes: the pools' first subnet, VNI 4096."""
    subnet = next_subnet((), pools, size)
    config = IPAMConfig(subnet=str(subnet), gateway=str(default_gateway(subnet)))
    return Network(
        id=network_id,
        name=INGRESS_NAME,
        driver=OVERLAY,
        ingress=True,
        ipam=NetworkIPAM(config=[config]),
        vni=INGRESS_VNI,
    )


class AddressPool:
    """The free host addresses of one network, lowest first.

    Built from the addresses its holders keep; ``take`` gives the lowest free one (in CIDR
    notation, ``10.0.1.5/24``), ``reserve`` marks one as held, ``release`` frees one.
    """

    def __init__(self, network: Network, held: Iterable[str] = ()) -> None:
        subnet = subnet_of(network)
        if subnet is None:
            raise InvalidSpec(f"network {network.name} has no subnet")
        self.network = network
        self.subnet = subnet
        config = network.ipam.config[0]
        ip_range = parse_subnet(config.ip_range) if config.ip_range else subnet
        first, last = int(ip_range.network_address), int(ip_range.broadcast_address)
        self._first = max(first, int(subnet.network_address) + 1)
        self._last = min(last, int(subnet.broadcast_address) - 1)
        self._excluded = {int(subnet.network_address), int(subnet.broadcast_address)}
        if network.gateway:
            self._excluded.add(int(ip_address(network.gateway)))
        self._held: set[int] = set()
        # Every free address below the cursor is in the heap; none above it is held yet
        # unless it is in _held.
        self._cursor = self._first
        self._freed: list[int] = []
        for address in held:
            self.reserve(address)

    def _parse(self, address: str) -> int | None:
        try:
            value = ip_address(address.split("/", maxsplit=1)[0])
        except ValueError:
            return None
        if not isinstance(value, IPv4Address) or value not in self.subnet:
            return None
        return int(value)

    def _usable(self, value: int) -> bool:
        return self._first <= value <= self._last and value not in self._excluded

    def reserve(self, address: str) -> bool:
        """Mark an address held; False when it is not one of this network's or already held."""
        value = self._parse(address)
        if value is None or not self._usable(value) or value in self._held:
            return False
        self._held.add(value)
        return True

    def holds(self, address: str) -> bool:
        value = self._parse(address)
        return value is not None and value in self._held

    def take(self) -> str | None:
        """The lowest free address (now held), or None when the subnet is full."""
        while self._freed:
            value = heapq.heappop(self._freed)
            if value not in self._held:
                return self._hold(value)
        while self._cursor <= self._last:
            value = self._cursor
            self._cursor += 1
            if value not in self._held and value not in self._excluded:
                return self._hold(value)
        return None

    def release(self, address: str) -> None:
        value = self._parse(address)
        if value is None or value not in self._held:
            return
        self._held.discard(value)
        if value < self._cursor:
            heapq.heappush(self._freed, value)

    def _hold(self, value: int) -> str:
        self._held.add(value)
        return f"{IPv4Address(value)}/{self.subnet.prefixlen}"
