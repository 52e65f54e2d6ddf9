"""The allocator: subnets and VNIs for networks, VIPs and published ports for services,
addresses for tasks (NEW → PENDING) and for nodes.

A task with no address to be given (``tasks_need_addresses``) never waits for it: its
orchestrator creates it PENDING.

- ``ipam``: subnets, gateways, VNIs and ``AddressPool`` (pure); the API allocates a network
  with ``allocate_network`` when it is created, ``swarm init`` makes ``ingress_network``.
- ``ports``: published ports, dynamic ones from 30000-32767 (pure); the API fills them in
  at create and update with ``allocate_ports``, the allocator keeps them so.
- ``decide.allocate``: one pass over the cluster (pure).
- ``Allocator``: the control loop that feeds ``allocate`` from the store and writes its
  decisions back in one commit per pass.
"""

from swarmlet.manager.allocator.allocator import Allocator
from swarmlet.manager.allocator.decide import (
    NO_INGRESS,
    PENDING_MESSAGE,
    Allocation,
    ClusterState,
    allocate,
    is_released,
    network_configs,
    service_network_ids,
    tasks_need_addresses,
)
from swarmlet.manager.allocator.ipam import (
    INGRESS_VNI,
    AddressPool,
    allocate_network,
    ingress_network,
)
from swarmlet.manager.allocator.ports import (
    FIRST_DYNAMIC_PORT,
    LAST_DYNAMIC_PORT,
    allocate_ports,
    held_ports,
    publishes_ingress,
)

__all__ = [
    "FIRST_DYNAMIC_PORT",
    "INGRESS_VNI",
    "LAST_DYNAMIC_PORT",
    "NO_INGRESS",
    "PENDING_MESSAGE",
    "AddressPool",
    "Allocation",
    "Allocator",
    "ClusterState",
    "allocate",
    "allocate_network",
    "allocate_ports",
    "held_ports",
    "ingress_network",
    "is_released",
    "network_configs",
    "publishes_ingress",
    "service_network_ids",
    "tasks_need_addresses",
]
