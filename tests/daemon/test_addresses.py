"""The addresses a node advertises and sends its VXLAN traffic from: an IP as given, or an
interface's address, refused with moby's words otherwise."""

from __future__ import annotations

import pytest

from swarmlet.daemon.addresses import (
    BAD_ADVERTISE_ADDR,
    BAD_DATA_PATH_ADDR,
    advertise_addr,
    data_path_addr,
)
from swarmlet.errors import InvalidSpec


def test_an_advertise_address_is_an_ip_with_or_without_a_port_or_an_interface():
    assert advertise_addr("10.0.0.5", "") == "10.0.0.5"
    assert advertise_addr("10.0.0.5:2377", "0.0.0.0:2377") == "10.0.0.5"
    assert advertise_addr("lo", "") == "127.0.0.1"  # the loopback interface's address
    assert advertise_addr("", "10.0.0.6:2377") == "10.0.0.6"


@pytest.mark.parametrize("value", ["0.0.0.0", "no-such-interface0"])
def test_a_bad_advertise_address_is_refused(value):
    with pytest.raises(InvalidSpec) as refused:
        advertise_addr(value, "")
    assert refused.value.message == BAD_ADVERTISE_ADDR


def test_a_data_path_address_is_an_ip_or_an_interface_and_none_is_the_advertise_one():
    assert data_path_addr("") == ""
    assert data_path_addr("192.168.7.9") == "192.168.7.9"
    assert data_path_addr("lo") == "127.0.0.1"


@pytest.mark.parametrize("value", ["0.0.0.0", "no-such-interface0", "10.0.0.1:4789"])
def test_a_bad_data_path_address_is_refused_with_mobys_words(value):
    with pytest.raises(InvalidSpec) as refused:
        data_path_addr(value)
    assert refused.value.message == BAD_DATA_PATH_ADDR


def test_joining_without_an_advertise_address_takes_the_one_the_manager_will_see():
    # As Swarm's manager takes the address a joining node connects from.
    assert advertise_addr("", "0.0.0.0:2377", towards="127.0.0.1") == "127.0.0.1"
    # A given address still wins.
    assert advertise_addr("10.0.0.5", "0.0.0.0:2377", towards="127.0.0.1") == "10.0.0.5"
