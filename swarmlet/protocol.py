"""The messages of the manager↔agent session, shared by the dispatcher and the agent.

One long-lived session per agent carries these as JSON (one message per frame), each with a
``type``. Only the leader's port opens one: another manager answers 503 before the upgrade. The
agent opens it with ``Register``; the manager answers ``Registered``; from then on the manager
sends ``Managers`` (where the agent may open its session), ``Assignments`` (the full set of
tasks for the node, first) and ``AssignmentChanges`` (what changed in it, on every change
after), and the agent sends ``Heartbeat`` every period and ``StatusUpdates`` whenever a task
moves.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from swarmlet.models import Config, Model, NodeDescription, Secret, Task, TaskStatus, TLSInfo
from swarmlet.models.base import OWN_JSON
from swarmlet.net.names import VXLAN_PORT

# The manager's port (2377) serves, all over TLS:
# the root CA, to a node about to join (no client certificate);
CA_PATH = "/ca"
# a node's first certificate, for a join token and a CSR (no client certificate);
JOIN_PATH = "/certificate"
# a new certificate for the node whose certificate is presented;
RENEW_PATH = "/certificate/renew"
# the session of the node whose certificate is presented (a websocket);
SESSION_PATH = "/session"
# and that node's network attachments: plain containers on attachable overlay networks
# (POST to attach, GET to list, DELETE ATTACHMENTS_PATH/<id> to detach).
ATTACHMENTS_PATH = "/attachments"


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


class AttachRequest(Model):
    """The body of a POST to ATTACHMENTS_PATH, in the Engine API's style of keys: a container
    of the calling node joins a network (its ID, name or an ID prefix, as the user named it)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1)
    container_id: str = Field(min_length=1)
    # The container's name: with the aliases, what tasks on the network resolve to it.
    name: str = ""
    aliases: list[str] = Field(default_factory=list)


class AttachmentInfo(Model):
    """An attachment as the manager answers it: the task standing for it, the network's ID,
    and the container's address on it (CIDR; empty until the allocator gives one)."""

    id: str
    network: str
    address: str
    container_id: str


class Register(Message):
    """The node is the one its client certificate names; it describes itself."""

    type: Literal["register"] = "register"
    description: NodeDescription
    addr: str = ""
    # Where its overlays' VXLAN traffic goes, when not ``addr`` (``--data-path-addr``).
    data_addr: str = ""


class Registered(Message):
    type: Literal["registered"] = "registered"
    node_id: str
    heartbeat_period: float
    manager_addrs: list[str] = Field(default_factory=list)


class Managers(Message):
    """The swarm's managers, where the agent may open its session: each manager node's
    ``ManagerStatus.Addr`` (its port 2377), sorted. Sent after registering and whenever the
    set changes; the agent rotates through them when its session is lost or refused."""

    type: Literal["managers"] = "managers"
    addrs: list[str]


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


class AssignmentChanges(Message):
    """What changed in the node's set of tasks since the session's last ``Assignments`` or
    ``AssignmentChanges`` (SwarmKit's incremental assignments): the tasks new or changed, and
    the IDs of those no longer assigned; with the secrets and configs of the whole set, as
    ``Assignments`` has them. Only the first set of a session is sent whole: a node with ten
    tasks placed in ten passes decoded 55 of them, and decoding was most of a thousand
    simulated nodes' work (benchmarks/scale_managers.py)."""

    type: Literal["assignment-changes"] = "assignment-changes"
    tasks: list[Task] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    secrets: list[Secret] = Field(default_factory=list)
    configs: list[Config] = Field(default_factory=list)


def assigned_after(
    assigned: dict[str, Task], message: Assignments | AssignmentChanges
) -> dict[str, Task]:
    """A node's tasks by ID, as its session knows them after ``message`` (``assigned``: as
    it knew them before; a new session starts from an empty set)."""
    if isinstance(message, Assignments):
        return {task.id: task for task in message.tasks}
    removed = set(message.removed)
    after = {task_id: task for task_id, task in assigned.items() if task_id not in removed}
    after.update((task.id, task) for task in message.tasks)
    return after


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
    vip: str | None = None
    aliases: list[str] = Field(default_factory=list)
    # (protocol, target port) pairs the VIP balances; empty: every port.
    ports: list[tuple[str, int]] = Field(default_factory=list)
    # The addresses (no prefix) of the service's RUNNING tasks on this network.
    backends: list[str] = Field(default_factory=list)


class AttachmentEntry(Message):
    """A plain container on a network (a running attachment), for the embedded DNS: its name
    and aliases resolve to its address, as Docker's DNS answers for a container."""

    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    # Its address on this network (no prefix).
    address: str


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
    attachments: list[AttachmentEntry] = Field(default_factory=list)


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
    # The swarm's VXLAN UDP port (`docker swarm init --data-path-port`).
    data_path_port: int = VXLAN_PORT


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


class LogsSubscribe(Message):
    """The manager asks for the logs of this node's containers of these services or tasks
    (``docker service logs``), read from the engine with these options; the agent answers with
    ``LogsBatch`` messages and, unless ``follow``, one ``LogsDone``. A subscription with the
    ID of one already running replaces it."""

    type: Literal["logs_subscribe"] = "logs_subscribe"
    id: str
    service_ids: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    follow: bool = False
    # The last lines of each container; None: all of them.
    tail: int | None = None
    # The engine's `since`: unix seconds[.nanoseconds]; '' for no bound.
    since: str = ""
    stdout: bool = True
    stderr: bool = True


class LogsCancel(Message):
    """The manager no longer wants the subscription (its client went away)."""

    type: Literal["logs_cancel"] = "logs_cancel"
    id: str


class LogEntry(Message):
    """One log message of a task's container, as the engine gave it."""

    task_id: str
    service_id: str
    stream: Literal["stdout", "stderr"]
    # The engine's timestamp, RFC 3339 with nanoseconds (fixed width).
    timestamp: str
    # The log driver's attributes (``details``), unescaped.
    attrs: list[tuple[str, str]] = Field(default_factory=list)
    # The message's bytes (its newline included), base64.
    data: str


class LogsBatch(Message):
    type: Literal["logs"] = "logs"
    id: str
    entries: list[LogEntry]


class LogsDone(Message):
    """The agent has sent every log message of the subscription; ``error`` says why some
    could not be read."""

    type: Literal["logs_done"] = "logs_done"
    id: str
    error: str = ""


Incoming = (
    Register
    | Registered
    | Managers
    | Heartbeat
    | StatusUpdates
    | Assignments
    | AssignmentChanges
    | NetworkState
    | SessionError
    | Certificates
    | NodeTLS
    | LogsSubscribe
    | LogsCancel
    | LogsBatch
    | LogsDone
)
AnyMessage = Annotated[Incoming, Field(discriminator="type")]
MESSAGE = TypeAdapter(AnyMessage)


def encode(message: Message) -> str:
    return message.model_dump_json(by_alias=True, exclude_none=True)


def decode(data: str | bytes) -> Incoming:
    """A message ``encode`` wrote (the other end is swarmlet too): read as the store reads its
    own JSON, without Go's key matching (``OWN_JSON``)."""
    return MESSAGE.validate_json(data, context=OWN_JSON)
