"""`POST /swarm/init`'s network fields: the default address pools, the subnet size and the
data path (VXLAN) port, checked as moby checks them and passed on to the daemon."""

from __future__ import annotations

import pytest

from swarmlet.api.control import LocalNodeState
from swarmlet.api.swarm import address_pools, data_path_port


@pytest.fixture
def inactive(control):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    return control


async def test_init_passes_the_pools_the_subnet_size_and_the_port_on(client, inactive):
    body = {"DefaultAddrPool": ["10.123.0.0/16", " 10.124.0.0/16 "], "SubnetSize": 26,
            "DataPathPort": 7789}  # fmt: skip
    response = await client.post("/v1.41/swarm/init", json=body)
    assert response.status == 200, await response.text()
    (request,) = inactive.inits
    assert request.default_addr_pool == ("10.123.0.0/16", "10.124.0.0/16")
    assert request.subnet_size == 26
    assert request.data_path_port == 7789


async def test_init_without_them_takes_swarms_defaults(client, inactive):
    # What the stock CLI sends when no flag is given.
    body = {"DefaultAddrPool": None, "SubnetSize": 0, "DataPathPort": 0}
    response = await client.post("/swarm/init", json=body)
    assert response.status == 200
    (request,) = inactive.inits
    # No pool given is none stored (Swarm shows null), and overlays come from 10.0.0.0/8.
    assert (request.default_addr_pool, request.subnet_size, request.data_path_port) == (
        (),
        24,
        4789,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"DefaultAddrPool": ["10.0.0.0/8"], "SubnetSize": 30}, "subnet size is out of range: 30"),
        (
            {"DefaultAddrPool": ["10.20.0.0/16"], "SubnetSize": 12},
            "invalid CIDR: '10.20.0.0/16'. Subnet size is too small for pool: 12",
        ),
        (
            {"DefaultAddrPool": ["10.0.0.0/33"]},
            "invalid base pool 10.0.0.0/33: invalid CIDR address: 10.0.0.0/33",
        ),
        ({"DataPathPort": 80}, "Datapath port number is not in valid range (1024-49151) : 80"),
        (
            {"DataPathPort": 50000},
            "Datapath port number is not in valid range (1024-49151) : 50000",
        ),
    ],
)
async def test_bad_pools_and_ports_are_refused_with_mobys_words(client, inactive, body, message):
    response = await client.post("/swarm/init", json=body)
    assert response.status == 400
    assert (await response.json()) == {"message": message}
    assert inactive.inits == []


def test_a_pool_is_normalised_and_a_port_range_is_inclusive():
    assert address_pools(["10.1.2.3/16"], 0) == (["10.1.0.0/16"], 24)
    assert data_path_port(1024) == 1024
    assert data_path_port(49151) == 49151


async def test_init_and_join_pass_the_data_path_address_on(client, inactive):
    response = await client.post("/swarm/init", json={"DataPathAddr": "eth1"})
    assert response.status == 200
    assert inactive.inits[0].data_path_addr == "eth1"  # resolved by the daemon, as moby does
    inactive.state = LocalNodeState.INACTIVE
    body = {"RemoteAddrs": ["10.0.0.1:2377"], "JoinToken": "SWMTKN-1-x", "DataPathAddr": "10.9.0.3"}
    response = await client.post("/swarm/join", json=body)
    assert response.status == 200, await response.text()
    assert inactive.joins[0].data_path_addr == "10.9.0.3"
