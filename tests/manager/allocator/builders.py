"""Plain objects for the allocator's tests: networks, services, tasks and nodes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from swarmlet.ids import new_id
from swarmlet.manager.allocator import allocate_network, ingress_network
from swarmlet.models import (
    ContainerSpec,
    EndpointSpec,
    IPAMConfig,
    Network,
    NetworkAttachmentConfig,
    NetworkIPAM,
    Node,
    NodeSpec,
    NodeState,
    NodeStatus,
    PortConfig,
    ReplicatedMode,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ingress(network_id: str = "ingress-id") -> Network:
    return ingress_network(network_id)


def network(
    name: str,
    existing: Sequence[Network] = (),
    *,
    subnet: str = "",
    gateway: str = "",
    network_id: str | None = None,
) -> Network:
    requested = [IPAMConfig(subnet=subnet, gateway=gateway)] if subnet else []
    asked = Network(id=network_id or f"{name}-id", name=name, ipam=NetworkIPAM(config=requested))
    return allocate_network(asked, existing)


def port(
    target: int, published: int | None = None, mode: str = "ingress", protocol: str = "tcp"
) -> PortConfig:
    return PortConfig(
        target_port=target, published_port=published, publish_mode=mode, protocol=protocol
    )


def service(
    name: str = "web",
    *,
    networks: Sequence[str | tuple[str, list[str]]] = (),
    ports: Sequence[PortConfig] = (),
    mode: str = "vip",
    service_id: str | None = None,
) -> Service:
    configs = [
        NetworkAttachmentConfig(target=n, aliases=None)
        if isinstance(n, str)
        else NetworkAttachmentConfig(target=n[0], aliases=n[1])
        for n in networks
    ]
    spec = ServiceSpec(
        name=name,
        task_template=TaskSpec(
            container_spec=ContainerSpec(image="busybox"), networks=configs or None
        ),
        mode=ServiceMode(replicated=ReplicatedMode(replicas=1)),
        endpoint_spec=EndpointSpec(mode=mode, ports=list(ports) or None),
    )
    return Service(id=service_id or f"{name}-id", spec=spec, spec_version=Version(index=1))


def task(
    svc: Service,
    slot: int = 1,
    *,
    state: TaskState = TaskState.NEW,
    desired: TaskState = TaskState.RUNNING,
    task_id: str | None = None,
) -> Task:
    return Task(
        id=task_id or new_id(),
        service_id=svc.id,
        service_name=svc.spec.name,
        slot=slot,
        spec=svc.spec.task_template,
        spec_version=svc.spec_version,
        status=TaskStatus(state=state, message="created", timestamp=NOW),
        desired_state=desired,
    )


def node(node_id: str, state: NodeState = NodeState.READY) -> Node:
    return Node(id=node_id, spec=NodeSpec(), status=NodeStatus(state=state, addr="192.168.1.2"))


def addresses(obj: Task) -> dict[str, str]:
    """A task's address on each network, by network name."""
    return {a.network.name: a.addresses[0] for a in obj.networks_attachments}
