"""Nodes, in the shape of the Engine API's ``Node``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from swarmlet.models.base import Model, OmitEmpty, StoredObject, ZeroIsDefault
from swarmlet.models.network import NodeAttachment
from swarmlet.models.resources import GenericResource


class NodeRole(StrEnum):
    WORKER = "worker"
    MANAGER = "manager"


class NodeAvailability(StrEnum):
    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


class NodeState(StrEnum):
    UNKNOWN = "unknown"
    DOWN = "down"
    READY = "ready"
    DISCONNECTED = "disconnected"


class NodeSpec(Model):
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    role: NodeRole = NodeRole.WORKER
    availability: NodeAvailability = NodeAvailability.ACTIVE


class Platform(Model):
    architecture: str = ""
    os: str = ""


class Resources(Model):
    nano_cpus: int = 0
    memory_bytes: int = 0
    generic_resources: ZeroIsDefault[list[GenericResource] | None] = None


class PluginDescription(Model):
    """One of the engine's plugins (``Type`` is ``Log``, ``Network``, ``Volume``...)."""

    type: str = ""
    name: str = ""


class EngineDescription(Model):
    engine_version: str = ""
    labels: OmitEmpty[dict[str, str]] = Field(default_factory=dict)
    plugins: ZeroIsDefault[list[PluginDescription] | None] = None


class TLSInfo(Model):
    """The root a node (or the cluster) trusts and the issuer of its certificate: subject and
    public key, DER in base64. ``docker swarm ca --rotate`` compares a node's with the
    cluster's to know when every node has a certificate from the new root."""

    trust_root: str = ""
    cert_issuer_subject: str = ""
    cert_issuer_public_key: str = ""


class NodeDescription(Model):
    hostname: str = ""
    platform: Platform = Field(default_factory=Platform)
    resources: Resources = Field(default_factory=Resources)
    engine: EngineDescription = Field(default_factory=EngineDescription)
    # What the node trusts and who issued its certificate, as the node's agent reports it.
    tls_info: TLSInfo | None = None


class NodeStatus(Model):
    state: NodeState = NodeState.UNKNOWN
    message: str | None = None
    addr: str = ""


class ManagerStatus(Model):
    leader: bool = False
    reachability: str = "reachable"
    addr: str = ""


class NodeCertificate(Model):
    """The last certificate the CA issued to the node (SwarmKit keeps it in the node too)."""

    role: NodeRole
    serial: str
    not_after: datetime


class Node(StoredObject):
    _not_in_api = {"certificate", "attachments", "data_path_addr"}

    spec: NodeSpec = Field(default_factory=NodeSpec)
    description: NodeDescription = Field(default_factory=NodeDescription)
    status: NodeStatus = Field(default_factory=NodeStatus)
    manager_status: ManagerStatus | None = None
    # Not in the Engine API (Swarm keeps it internally): written by the CA.
    certificate: NodeCertificate | None = None
    # Not in the Engine API (Swarm keeps them internally): the node's own address on each
    # overlay network, written by the allocator.
    attachments: list[NodeAttachment] = Field(default_factory=list)
    # Not in the Engine API (libnetwork's, in Swarm): where the node's VXLAN traffic goes
    # (``--data-path-addr``), as its agent registered it; None is Status.Addr.
    data_path_addr: str | None = None

    @property
    def hostname(self) -> str:
        return self.description.hostname

    def is_available(self) -> bool:
        """Ready and active: the node may be given new tasks."""
        return (
            self.status.state == NodeState.READY
            and self.spec.availability == NodeAvailability.ACTIVE
        )
