"""Overlay networks, and how tasks and nodes are attached to them.

A ``Network`` is kept in the store in the shape of the Engine API's network resource for the
parts that shape has (name, driver, IPAM, flags, options, labels); ``vni`` is swarmlet's own
(also shown to clients as the ``com.docker.network.driver.overlay.vxlanid_list`` option).
Networks do not change after they are made, as in Swarm.
"""

from __future__ import annotations

from pydantic import Field

from swarmlet.models.base import Model, StoredObject, ZeroIsDefault

OVERLAY = "overlay"
INGRESS_NAME = "ingress"
VXLAN_OPTION = "com.docker.network.driver.overlay.vxlanid_list"
# Where overlay subnets come from when the swarm was given no pools, and their size.
DEFAULT_POOLS = ("10.0.0.0/8",)
DEFAULT_SUBNET_SIZE = 24


class IPAMConfig(Model):
    subnet: str = ""
    gateway: str = ""
    ip_range: str | None = None


class NetworkIPAM(Model):
    # Empty is the default driver, as moby's BasicNetworkCreateToGRPC makes it.
    driver: ZeroIsDefault[str] = "default"
    config: list[IPAMConfig] = Field(default_factory=list)
    options: dict[str, str] = Field(default_factory=dict)


class Network(StoredObject):
    name: str
    driver: str = OVERLAY
    labels: dict[str, str] = Field(default_factory=dict)
    options: dict[str, str] = Field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv6: bool = False
    ipam: NetworkIPAM = Field(default_factory=NetworkIPAM)
    # The VXLAN network identifier, unique in the cluster (Swarm starts at 4096 + 1).
    vni: int = 0

    @property
    def subnet(self) -> str:
        return self.ipam.config[0].subnet if self.ipam.config else ""

    @property
    def gateway(self) -> str:
        return self.ipam.config[0].gateway if self.ipam.config else ""


class NetworkAttachment(Model):
    """A task's place on a network: the network as it was when attached, its address(es)
    in CIDR notation (``10.0.1.5/24``) and the aliases it answers to in DNS."""

    network: Network
    addresses: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)


class NodeAttachment(Model):
    """A node's own address on a network (Swarm's per-node load-balancer endpoint): the host
    side of the network's bridge, used for the routing mesh, SNAT and the embedded DNS."""

    network_id: str = Field(alias="NetworkID")
    address: str
