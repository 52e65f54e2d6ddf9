"""The messages of the manager↔agent session, shared by the dispatcher and the agent.

One long-lived session per agent carries these as JSON (one message per frame), each with a
``type``. The agent opens it with ``Register``; the manager answers ``Registered``; from then on
the manager sends ``Assignments`` (the full set of tasks for the node, on every change) and the
agent sends ``Heartbeat`` every period and ``StatusUpdates`` whenever a task moves.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from swarmlet.models import Config, NodeDescription, Secret, Task, TaskStatus, TLSInfo

# The manager's port (2377) serves, all over TLS:
# the root CA, to a node about to join (no client certificate);
CA_PATH = "/ca"
# a node's first certificate, for a join token and a CSR (no client certificate);
JOIN_PATH = "/certificate"
# a new certificate for the node whose certificate is presented;
RENEW_PATH = "/certificate/renew"
# and the session of the node whose certificate is presented (a websocket).
SESSION_PATH = "/session"


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)


class CertificateRequest(Message):
    """The body of JOIN_PATH and RENEW_PATH."""

    csr: str
    token: str = ""


class IssuedCertificate(Message):
    node_id: str
    certificate: str
    # The roots to trust from now on, PEM.
    trust: str


class Register(Message):
    """The node is the one its client certificate names; it describes itself."""

    type: Literal["register"] = "register"
    description: NodeDescription
    addr: str = ""


class Registered(Message):
    type: Literal["registered"] = "registered"
    node_id: str
    heartbeat_period: float
    manager_addrs: list[str] = Field(default_factory=list)


class Heartbeat(Message):
    type: Literal["heartbeat"] = "heartbeat"


class StatusUpdate(Message):
    task_id: str
    status: TaskStatus


class StatusUpdates(Message):
    type: Literal["status"] = "status"
    updates: list[StatusUpdate]


class Assignments(Message):
    """The node's full set of tasks, with the secrets and configs (data included) that those
    of them not yet terminal reference, and no other: what the agent keeps, in memory only."""

    type: Literal["assignments"] = "assignments"
    tasks: list[Task]
    secrets: list[Secret] = Field(default_factory=list)
    configs: list[Config] = Field(default_factory=list)


class Peer(Message):
    """An address on an overlay network that lives on another host: where to send its frames
    (the VXLAN tunnel endpoint, the host's address) and its MAC (derived from the IP)."""

    ip: str
    mac: str
    vtep: str


class ServiceEntry(Message):
    """A service as seen on one network: for the embedded DNS and the VIP load balancer."""

    id: str
    name: str
    # The service's virtual IP on this network (no prefix); None in dnsrr mode.
    vip: str | None
    aliases: list[str] = Field(default_factory=list)
    # (protocol, target port) pairs the VIP balances; empty: every port.
    ports: list[tuple[str, int]] = Field(default_factory=list)
    # The addresses (no prefix) of the service's RUNNING tasks on this network.
    backends: list[str] = Field(default_factory=list)


class NetworkView(Message):
    """One overlay network as a host needs to know it."""

    id: str
    name: str
    vni: int
    subnet: str
    ingress: bool = False
    internal: bool = False
    # This host's own address on the network, in CIDR notation ('' when it has none yet).
    local_address: str = ""
    peers: list[Peer] = Field(default_factory=list)
    services: list[ServiceEntry] = Field(default_factory=list)


class PublishedBackend(Message):
    ip: str
    # The task runs on this host: no SNAT, so it sees the client's real address.
    local: bool


class PublishedPort(Message):
    """A port of the ingress routing mesh: every host answers on it."""

    service_id: str
    protocol: str
    published_port: int
    target_port: int
    backends: list[PublishedBackend] = Field(default_factory=list)


class NetworkState(Message):
    """Everything about overlay networks a host must program: sent after registering and on
    every change, like assignments."""

    type: Literal["network"] = "network"
    networks: list[NetworkView] = Field(default_factory=list)
    published: list[PublishedPort] = Field(default_factory=list)


class SessionError(Message):
    """The manager refuses the session (a bad token, a removed node): the agent must not retry
    with the same credentials."""

    type: Literal["error"] = "error"
    message: str


class Certificates(Message):
    """The manager tells a node what to trust, and whether to renew its certificate now (its
    role changed, or the swarm moves to a new root)."""

    type: Literal["certificates"] = "certificates"
    trust: str
    renew: bool = False


class NodeTLS(Message):
    """The agent's report of what it trusts and who issued its certificate, whenever either
    changes (``docker swarm ca --rotate`` waits on it)."""

    type: Literal["tls"] = "tls"
    tls_info: TLSInfo


Incoming = (
    Register
    | Registered
    | Heartbeat
    | StatusUpdates
    | Assignments
    | NetworkState
    | SessionError
    | Certificates
    | NodeTLS
)
AnyMessage = Annotated[Incoming, Field(discriminator="type")]
MESSAGE = TypeAdapter(AnyMessage)


def encode(message: Message) -> str:
    return message.model_dump_json(by_alias=True)


def decode(data: str | bytes) -> Incoming:
    return MESSAGE.validate_json(data)
