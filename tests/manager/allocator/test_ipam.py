from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmlet.errors import InvalidSpec
from swarmlet.manager.allocator.ipam import (
    FIRST_VNI,
    INGRESS_VNI,
    OVERLAP,
    AddressPool,
    allocate_network,
    ingress_network,
    next_subnet,
    next_vni,
)
from swarmlet.models import VXLAN_OPTION, IPAMConfig, Network, NetworkIPAM
from tests.manager.allocator.builders import ingress, network


def asked(name: str = "net", **options: str) -> Network:
    return Network(id=f"{name}-id", name=name, options=options)


def with_config(subnet: str = "", gateway: str = "", ip_range: str | None = None) -> Network:
    config = IPAMConfig(subnet=subnet, gateway=gateway, ip_range=ip_range)
    return Network(id="net-id", name="net", ipam=NetworkIPAM(config=[config]))


def test_ingress_gets_the_first_subnet_and_vni_4096():
    made = ingress_network("i")
    assert made.ingress
    assert made.name == "ingress"
    assert made.driver == "overlay"
    assert (made.subnet, made.gateway, made.vni) == ("10.0.0.0/24", "10.0.0.1", INGRESS_VNI)


def test_networks_take_the_lowest_free_24_after_ingress():
    first = network("one", [ingress()])
    second = network("two", [ingress(), first])
    assert (first.subnet, first.gateway, first.vni) == ("10.0.1.0/24", "10.0.1.1", FIRST_VNI)
    assert (second.subnet, second.gateway, second.vni) == ("10.0.2.0/24", "10.0.2.1", 4098)


def test_subnets_in_use_are_skipped_and_freed_ones_reused():
    custom = network("custom", subnet="10.0.1.0/24")
    assert next_subnet([ingress(), custom]) == IPv4Network("10.0.2.0/24")
    # A larger subnet given by a user covers several /24s.
    wide = network("wide", subnet="10.0.0.0/22")
    assert next_subnet([wide]) == IPv4Network("10.0.4.0/24")
    assert next_subnet([]) == IPv4Network("10.0.0.0/24")


def test_the_pool_can_be_exhausted():
    full = network("full", subnet="10.0.0.0/8")
    with pytest.raises(InvalidSpec, match="could not find an available"):
        next_subnet([full])


def test_a_given_subnet_and_gateway_are_kept():
    made = allocate_network(with_config("192.168.10.0/24", "192.168.10.254"), [ingress()])
    assert (made.subnet, made.gateway) == ("192.168.10.0/24", "192.168.10.254")
    made = allocate_network(with_config("172.20.0.0/16"), [ingress()])
    assert (made.subnet, made.gateway) == ("172.20.0.0/16", "172.20.0.1")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (with_config("10.0.0.128/25"), OVERLAP),
        (with_config("10.0.0.0/16"), OVERLAP),
        (with_config("8.8.8.0/24"), "not inside a private address range"),
        (with_config("fd00::/64"), "only IPv4"),
        (with_config("10.1.0.0/31"), "too small"),
        (with_config("banana"), "invalid subnet banana"),
        (with_config("10.1.0.0/24", "10.2.0.1"), "does not contain gateway"),
        (with_config("10.1.0.0/24", "10.1.0.255"), "invalid gateway"),
        (with_config("10.1.0.0/24", "nope"), "invalid gateway nope"),
        (with_config("10.1.0.0/24", ip_range="10.2.0.0/25"), "does not contain range"),
        (with_config("", "10.1.0.1"), "needs a subnet"),
    ],
)
def test_bad_subnets_are_refused(config, message):
    with pytest.raises(InvalidSpec, match=message):
        allocate_network(config, [ingress()])


def test_two_configs_are_refused():
    two = Network(
        id="x",
        name="x",
        ipam=NetworkIPAM(
            config=[IPAMConfig(subnet="10.1.0.0/24"), IPAMConfig(subnet="10.2.0.0/24")]
        ),
    )
    with pytest.raises(InvalidSpec, match="only one subnet"):
        allocate_network(two, [])


def test_vnis_are_unique_and_a_requested_one_is_honoured():
    existing = [ingress(), network("a", [ingress()])]
    assert next_vni(existing) == 4098
    made = allocate_network(asked(**{VXLAN_OPTION: "5000"}), existing)
    assert made.vni == 5000
    with pytest.raises(InvalidSpec, match="already in use"):
        allocate_network(asked(**{VXLAN_OPTION: "4097"}), existing)
    with pytest.raises(InvalidSpec, match="not a number"):
        allocate_network(asked(**{VXLAN_OPTION: "x"}), existing)
    gap = [Network(id="g", name="g", vni=4097), Network(id="h", name="h", vni=4099)]
    assert next_vni(gap) == 4098


# Addresses


def test_addresses_are_the_lowest_free_hosts_never_network_broadcast_or_gateway():
    pool = AddressPool(network("n", subnet="10.1.0.0/29"))  # .1 is the gateway
    taken = [pool.take() for _ in range(5)]
    assert taken == [f"10.1.0.{i}/29" for i in (2, 3, 4, 5, 6)]
    assert pool.take() is None
    pool.release("10.1.0.4/29")
    pool.release("10.1.0.3/29")
    assert pool.take() == "10.1.0.3/29"
    assert pool.take() == "10.1.0.4/29"


def test_held_addresses_are_skipped_and_reserved_only_once():
    made = network("n", subnet="10.1.0.0/24", gateway="10.1.0.2")
    pool = AddressPool(made, held=["10.1.0.1/24", "10.1.0.3/24"])
    assert pool.take() == "10.1.0.4/24"
    assert not pool.reserve("10.1.0.3/24")
    assert not pool.reserve("10.1.0.2/24")  # the gateway
    assert not pool.reserve("10.9.0.1/24")  # not on this network
    assert pool.reserve("10.1.0.200/24")
    assert pool.holds("10.1.0.200/24")


def test_an_ip_range_bounds_the_addresses():
    made = allocate_network(with_config("10.1.0.0/24", ip_range="10.1.0.64/30"), [])
    assert made.gateway == "10.1.0.64"
    pool = AddressPool(made)
    assert [pool.take(), pool.take(), pool.take(), pool.take()] == [
        "10.1.0.65/24",
        "10.1.0.66/24",
        "10.1.0.67/24",
        None,
    ]


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), max_size=80))
def test_the_pool_always_gives_the_lowest_free_address_and_never_one_twice(steps):
    made = network("n", subnet="10.1.0.0/27")
    pool = AddressPool(made)
    usable = [
        f"{IPv4Address(int(IPv4Address('10.1.0.0')) + i)}/27" for i in range(2, 31)
    ]  # .0 network, .1 gateway, .31 broadcast
    held: list[str] = []
    for take, index in steps:
        if take or not held:
            got = pool.take()
            free = [a for a in usable if a not in held]
            assert got == (free[0] if free else None)
            if got is not None:
                held.append(got)
        else:
            gone = held.pop(index % len(held))
            pool.release(gone)
    assert len(set(held)) == len(held)
