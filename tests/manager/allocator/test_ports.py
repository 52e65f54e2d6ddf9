from __future__ import annotations

import pytest

from swarmlet.errors import InvalidSpec
from swarmlet.manager.allocator.ports import (
    FIRST_DYNAMIC_PORT,
    LAST_DYNAMIC_PORT,
    allocate_ports,
    held_ports,
    publishes_ingress,
)
from swarmlet.models import Endpoint
from tests.manager.allocator.builders import port, service


def numbers(ports):
    return [(p.target_port, p.published_port, p.publish_mode) for p in ports]


def test_an_unnumbered_ingress_port_gets_the_lowest_free_dynamic_one():
    ports = allocate_ports([port(80), port(443)], [], {(30000, "tcp"), (30002, "tcp")})
    assert numbers(ports) == [(80, 30001, "ingress"), (443, 30003, "ingress")]


def test_protocols_have_their_own_numbers():
    ports = allocate_ports([port(53, protocol="udp")], [], {(30000, "tcp")})
    assert numbers(ports) == [(53, 30000, "ingress")]


def test_given_and_host_ports_are_kept_as_they_are():
    wanted = [port(80, 8080), port(81, mode="host"), port(82, 9000, mode="host")]
    assert allocate_ports(wanted, [], set()) == wanted


def test_a_dynamic_number_is_kept_across_updates():
    first = allocate_ports([port(80)], [], set())
    assert numbers(first) == [(80, 30000, "ingress")]
    # Another port added before it, and the number 30000 wanted by nobody else: 80 keeps it.
    again = allocate_ports([port(22), port(80)], first, set())
    assert numbers(again) == [(22, 30001, "ingress"), (80, 30000, "ingress")]
    # Target changed: a fresh number (the old one is free again, and lowest).
    changed = allocate_ports([port(81)], again, {(30001, "tcp")})
    assert numbers(changed) == [(81, 30000, "ingress")]


def test_a_number_given_explicitly_elsewhere_is_not_reused():
    first = allocate_ports([port(80)], [], set())
    again = allocate_ports([port(80), port(90, 30000)], first, set())
    assert numbers(again) == [(80, 30001, "ingress"), (90, 30000, "ingress")]


def test_the_dynamic_range_can_run_out():
    taken = {(n, "tcp") for n in range(FIRST_DYNAMIC_PORT, LAST_DYNAMIC_PORT + 1)}
    with pytest.raises(InvalidSpec, match="no published port left in 30000-32767"):
        allocate_ports([port(80)], [], taken)


def test_held_ports_cover_spec_and_endpoint():
    web = service("web", ports=[port(80, 8080)])
    api = service("api", ports=[port(80)])
    api = api.replace(endpoint=Endpoint(ports=[port(80, 30000)]))
    assert held_ports([web, api]) == {(8080, "tcp"): web.id, (30000, "tcp"): api.id}


def test_ingress_is_needed_by_any_ingress_mode_port():
    assert publishes_ingress([port(80)])
    assert not publishes_ingress([port(80, 8080, mode="host")])
    assert not publishes_ingress([])
