"""What a host must know of the overlay networks: computed from the store, without I/O.

A host takes part in a network when it has a live task on it or an address of its own on it
(the allocator gives every node one on the networks in use, `ingress` included). For each such
network it learns where every other address lives (peers, for the static VXLAN forwarding
entries), the services on it (for the embedded DNS and the VIP load balancer) and its running
attachments, plain containers (for the embedded DNS); and every host with an address on
`ingress` learns the published ports of the routing mesh. An attachment counts as a task:
running, it is present on its node, and its address is a peer on the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from swarmlet.models import Network, Node, NodeState, Service, Task, TaskState
from swarmlet.net.names import VXLAN_PORT, ip_of, mac_for
from swarmlet.protocol import (
    AttachmentEntry,
    NetworkState,
    NetworkView,
    Peer,
    PublishedBackend,
    PublishedPort,
    ServiceEntry,
)


@dataclass(frozen=True)
class Cluster:
    """The objects the views are computed from (a read of the store)."""

    nodes: Mapping[str, Node]
    networks: Mapping[str, Network]
    services: Mapping[str, Service]
    tasks: Iterable[Task]
    data_path_port: int = VXLAN_PORT


def is_present(task: Task) -> bool:
    """The task holds its address on a node: placed, and neither ended nor told to go."""
    return (
        task.node_id is not None
        and TaskState.ASSIGNED <= task.state <= TaskState.RUNNING
        and task.desired_state <= TaskState.COMPLETE  # a job's task runs to COMPLETE
    )


def is_serving(task: Task) -> bool:
    """The task may take connections: running, and meant to. A task with a healthcheck is
    RUNNING only once healthy; a running task with an Err is being stopped by its agent (it
    turned unhealthy), and leaves the load balancer before its container stops."""
    return (
        task.state == TaskState.RUNNING
        and task.desired_state == TaskState.RUNNING
        and not task.status.err
    )


def network_state(node_id: str, cluster: Cluster) -> NetworkState:
    node = cluster.nodes.get(node_id)
    if node is None:
        return NetworkState(data_path_port=cluster.data_path_port)
    tasks = [task for task in cluster.tasks if task.networks_attachments and is_present(task)]
    local_addresses = {att.network_id: att.address for att in node.attachments}
    mine = set(local_addresses)
    for task in tasks:
        if task.node_id == node_id:
            mine.update(att.network.id for att in task.networks_attachments)
    views = [
        _view(network, node_id, local_addresses.get(network.id, ""), tasks, cluster)
        for network_id in sorted(mine)
        if (network := cluster.networks.get(network_id)) is not None
    ]
    ingress = next((n for n in cluster.networks.values() if n.ingress), None)
    published: list[PublishedPort] = []
    if ingress is not None and ingress.id in local_addresses:
        published = _published(node_id, ingress, tasks, cluster)
    return NetworkState(networks=views, published=published, data_path_port=cluster.data_path_port)


def _view(
    network: Network, node_id: str, local_address: str, tasks: list[Task], cluster: Cluster
) -> NetworkView:
    peers: list[Peer] = []
    backends: dict[str, list[str]] = {}
    attachments: list[AttachmentEntry] = []
    for task in tasks:
        for att in task.networks_attachments:
            if att.network.id != network.id or not att.addresses:
                continue
            ip = ip_of(att.addresses[0])
            if task.node_id != node_id:
                vtep = _vtep(cluster.nodes.get(task.node_id or ""))
                if vtep:
                    peers.append(Peer(ip=ip, mac=mac_for(ip), vtep=vtep))
            if not is_serving(task):
                continue
            if task.is_attachment:
                attachments.append(
                    AttachmentEntry(
                        id=task.id, name=task.name or "", aliases=list(att.aliases), address=ip
                    )
                )
            else:
                backends.setdefault(task.service_id, []).append(ip)
    for other in cluster.nodes.values():
        vtep = _vtep(other)
        if other.id == node_id or not vtep:
            continue
        for own in other.attachments:
            if own.network_id == network.id:
                ip = ip_of(own.address)
                peers.append(Peer(ip=ip, mac=mac_for(ip), vtep=vtep))
    services = [
        entry
        for service in cluster.services.values()
        if (entry := _entry(service, network, backends.get(service.id, []))) is not None
    ]
    return NetworkView(
        id=network.id,
        name=network.name,
        vni=network.vni,
        subnet=network.subnet,
        ingress=network.ingress,
        internal=network.internal,
        local_address=local_address,
        peers=sorted(peers, key=lambda peer: peer.ip),
        services=sorted(services, key=lambda entry: entry.name),
        attachments=sorted(attachments, key=lambda entry: (entry.name, entry.id)),
    )


def _vtep(node: Node | None) -> str:
    """Where a node's VXLAN frames go: its data path address, else its advertised one."""
    if node is None or node.status.state == NodeState.DOWN:
        return ""
    return node.data_path_addr or node.status.addr


def _entry(service: Service, network: Network, backends: list[str]) -> ServiceEntry | None:
    attached = [
        config
        for config in (service.spec.task_template.networks or service.spec.networks or [])
        if config.target == network.id
    ]
    vips = (service.endpoint.virtual_ips if service.endpoint else None) or []
    vip = next((ip_of(v.addr) for v in vips if v.network_id == network.id), None)
    if not attached and vip is None:
        return None
    endpoint_spec = service.spec.endpoint_spec
    dnsrr = endpoint_spec is not None and endpoint_spec.mode == "dnsrr"
    ports = [
        (port.protocol, port.target_port)
        for port in (endpoint_spec.ports or [] if endpoint_spec else [])
    ]
    return ServiceEntry(
        id=service.id,
        name=service.spec.name,
        vip=None if dnsrr else vip,
        aliases=sorted({alias for config in attached for alias in config.aliases or []}),
        ports=ports if network.ingress else [],
        backends=sorted(backends),
    )


def _published(
    node_id: str, ingress: Network, tasks: list[Task], cluster: Cluster
) -> list[PublishedPort]:
    published = []
    for service in sorted(cluster.services.values(), key=lambda s: s.id):
        ports = (service.endpoint.ports if service.endpoint else None) or []
        backends = [
            PublishedBackend(ip=ip_of(att.addresses[0]), local=task.node_id == node_id)
            for task in tasks
            if task.service_id == service.id and is_serving(task)
            for att in task.networks_attachments
            if att.network.id == ingress.id and att.addresses
        ]
        for port in ports:
            if port.publish_mode != "ingress" or not port.published_port:
                continue
            published.append(
                PublishedPort(
                    service_id=service.id,
                    protocol=port.protocol,
                    published_port=port.published_port,
                    target_port=port.target_port,
                    backends=sorted(backends, key=lambda backend: backend.ip),
                )
            )
    return published
