"""One allocation pass over the cluster, decided without I/O: ``allocate(state, now)``.

What a pass gives out, each from the network's ``AddressPool``:
- a VIP to every service on each network it is attached to (its task template's networks,
  and ``ingress`` first when it publishes ingress-mode ports), unless its endpoint mode is
  ``dnsrr``; a VIP already held is kept, one on a network the spec dropped is released;
- its published ports, dynamic numbers filled in (``ports.allocate_ports``);
- to every NEW task meant to run: an address on each of its service's networks (ingress
  first), moving it to PENDING; a task that cannot have them stays NEW, ``Status.Err`` saying
  why. An attachment (a plain container's task, no service) is one such task, its network the
  one of its spec;
- to every Ready node: its own address on every network in use (one that a service or a live
  task is attached to, or an attachment waits for); a node keeps an address while the network
  is in use.

Nothing is written to free an address: what is held is read from the objects at each pass.
An address is held by a service's VIP, a node's attachment, or a task that is not *released*
(deleted, or meant to stop and ended or never placed). So allocations survive a restart of
the manager: they are the objects in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from swarmlet.errors import InvalidSpec
from swarmlet.manager.allocator.ipam import AddressPool
from swarmlet.manager.allocator.ports import (
    PortKey,
    allocate_ports,
    held_ports,
    publishes_ingress,
    spec_ports,
)
from swarmlet.manager.store import Op
from swarmlet.models import (
    Endpoint,
    EndpointSpec,
    EndpointVirtualIP,
    Network,
    NetworkAttachment,
    NetworkAttachmentConfig,
    Node,
    NodeAttachment,
    NodeState,
    Service,
    Task,
    TaskState,
    TaskStatus,
)

log = logging.getLogger(__name__)

# Swarm's status message for a task the allocator passed on to the scheduler.
PENDING_MESSAGE = "pending task scheduling"
NO_INGRESS = "service needs ingress network, but no ingress network is present"


@dataclass(frozen=True)
class ClusterState:
    networks: Sequence[Network]
    services: Sequence[Service]
    tasks: Sequence[Task]
    nodes: Sequence[Node]


@dataclass
class Allocation:
    """The objects a pass changed, and the NEW tasks it had to leave waiting."""

    services: list[Service] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)

    def ops(self) -> list[Op]:
        return [Op.update(obj) for obj in [*self.services, *self.tasks, *self.nodes]]


def is_released(task: Task) -> bool:
    """A task whose addresses are free again: it is meant to stop and has ended, or will
    never reach a node."""
    # A job's task is meant to run to COMPLETE: it holds its addresses until it ended.
    return (task.desired_state > TaskState.RUNNING and task.state.is_terminal) or (
        task.desired_state > TaskState.COMPLETE and task.state < TaskState.ASSIGNED
    )


def waits_for_addresses(task: Task) -> bool:
    return task.state is TaskState.NEW and task.desired_state <= TaskState.COMPLETE


def network_configs(service: Service) -> list[NetworkAttachmentConfig]:
    """The service's networks: its task template's, else the deprecated ``Networks``."""
    return list(service.spec.task_template.networks or service.spec.networks or ())


def tasks_need_addresses(service: Service) -> bool:
    """Whether a pass has anything to give the service's new tasks: an address on a network
    of its spec, or on ingress for the ports it publishes there. (Its orchestrator creates the
    tasks of a service that needs none PENDING: a pass would only move each to PENDING, one
    write of every task for nothing.)"""
    return bool(network_configs(service)) or publishes_ingress(spec_ports(service))


def ingress_of(networks: Sequence[Network]) -> Network | None:
    found = sorted((n for n in networks if n.ingress), key=lambda n: n.id)
    return found[0] if found else None


def service_network_ids(service: Service, ingress: Network | None) -> list[str]:
    """The networks a service is attached to, ingress first (when it needs it)."""
    ids: list[str] = []
    if ingress is not None and publishes_ingress(spec_ports(service)):
        ids.append(ingress.id)
    for config in network_configs(service):
        if config.target not in ids:
            ids.append(config.target)
    return ids


def _is_dnsrr(service: Service) -> bool:
    spec = service.spec.endpoint_spec
    return spec is not None and spec.mode == "dnsrr"


class _OthersHold(Container[PortKey]):
    """The published ports held by services other than one."""

    def __init__(self, held: dict[PortKey, str], service_id: str) -> None:
        self._held = held
        self._service_id = service_id

    def __contains__(self, key: object) -> bool:
        owner = self._held.get(key) if isinstance(key, tuple) else None
        return owner is not None and owner != self._service_id


class _Pass:
    def __init__(self, state: ClusterState, now: datetime) -> None:
        self.state = state
        self.now = now
        self.networks = {n.id: n for n in state.networks}
        self.ingress = ingress_of(state.networks)
        self.pools: dict[str, AddressPool] = {}
        for network in state.networks:
            try:
                self.pools[network.id] = AddressPool(network)
            except InvalidSpec as exc:
                log.warning("allocator: network %s cannot be used: %s", network.name, exc)
        self.result = Allocation()
        # The status of every task the pass allocates: one object, shared (models are
        # immutable), as the scheduler's.
        self.pending = TaskStatus(state=TaskState.PENDING, message=PENDING_MESSAGE, timestamp=now)

    def run(self) -> Allocation:
        services = sorted(self.state.services, key=lambda s: s.id)
        wanted = {
            s.id: [] if _is_dnsrr(s) else self._existing(service_network_ids(s, self.ingress))
            for s in services
        }
        in_use = self._networks_in_use(services)
        # Reserve what stays held before anything new is given out: tasks' addresses first
        # (a task keeps its address for life), then VIPs and nodes' (given again if taken).
        for task in self.state.tasks:
            if not is_released(task):
                self._keep_task(task)
        kept_vips = {s.id: self._keep_vips(s, wanted[s.id]) for s in services}
        kept_nodes = {n.id: self._keep_node(n, in_use) for n in self.state.nodes}
        # Then give out what is missing.
        held = held_ports(services)
        for service in services:
            self._service(service, wanted[service.id], kept_vips[service.id], held)
        by_id = {s.id: s for s in services}
        for task in sorted(self.state.tasks, key=lambda t: (t.service_id, t.slot or 0, t.id)):
            if waits_for_addresses(task):
                self._task(task, by_id.get(task.service_id))
        for node in sorted(self.state.nodes, key=lambda n: n.id):
            self._node(node, kept_nodes[node.id], in_use)
        return self.result

    def _existing(self, network_ids: list[str]) -> list[str]:
        return [i for i in network_ids if i in self.pools]

    def _networks_in_use(self, services: Sequence[Service]) -> list[str]:
        """Networks a service or a live task is attached to: ingress first, then by name."""
        used: set[str] = set()
        for service in services:
            used.update(service_network_ids(service, self.ingress))
        for task in self.state.tasks:
            if not is_released(task):
                used.update(a.network.id for a in task.networks_attachments)
            if task.is_attachment and waits_for_addresses(task):
                # Its node needs the network's bridge, in the pass that gives its address.
                used.update(config.target for config in task.spec.networks or ())
        present = [self.networks[i] for i in used if i in self.pools]
        return [n.id for n in sorted(present, key=lambda n: (not n.ingress, n.name, n.id))]

    # Services

    def _keep_vips(self, service: Service, wanted: list[str]) -> dict[str, EndpointVirtualIP]:
        kept: dict[str, EndpointVirtualIP] = {}
        vips = (service.endpoint.virtual_ips or []) if service.endpoint else []
        for vip in vips:
            network_id = vip.network_id
            if (
                network_id in wanted
                and network_id not in kept
                and self.pools[network_id].reserve(vip.addr)
            ):
                kept[network_id] = vip
        return kept

    def _service(
        self,
        service: Service,
        wanted: list[str],
        kept: dict[str, EndpointVirtualIP],
        held: dict[PortKey, str],
    ) -> None:
        vips: list[EndpointVirtualIP] = []
        for network_id in wanted:
            vip = kept.get(network_id)
            if vip is None:
                address = self.pools[network_id].take()
                if address is None:
                    log.warning(
                        "allocator: no address left on network %s for the VIP of service %s",
                        self.networks[network_id].name,
                        service.spec.name,
                    )
                    continue
                vip = EndpointVirtualIP(network_id=network_id, addr=address)
            vips.append(vip)
        current = service.endpoint
        current_ports = list(current.ports or ()) if current else []
        try:
            ports = allocate_ports(
                spec_ports(service), current_ports, _OthersHold(held, service.id)
            )
        except InvalidSpec as exc:
            log.warning("allocator: service %s: %s", service.spec.name, exc)
            ports = current_ports
        for port in ports:
            if port.published_port:
                held.setdefault((port.published_port, port.protocol), service.id)
        spec = service.spec.endpoint_spec or EndpointSpec()
        if current is None and not ports and not vips:
            return
        endpoint = (current or Endpoint(spec=spec)).replace(
            spec=spec, ports=ports or None, virtual_ips=vips or None
        )
        if endpoint != current:
            self.result.services.append(service.replace(endpoint=endpoint))

    # Tasks

    def _keep_task(self, task: Task) -> None:
        for attachment in task.networks_attachments:
            pool = self.pools.get(attachment.network.id)
            if pool is not None:
                for address in attachment.addresses:
                    pool.reserve(address)

    def _task(self, task: Task, service: Service | None) -> None:
        if service is None and not task.is_attachment:
            return  # its service is gone: the reaper removes it
        attachments: list[NetworkAttachment] = []
        error = None
        # The task's own networks (its spec is its service's as it was, or an attachment's),
        # else the deprecated service-level ones.
        own = task.spec.networks or (service.spec.networks if service else None) or ()
        configs = {c.target: c for c in own}
        targets = list(configs)
        if service is not None and publishes_ingress(spec_ports(service)):
            if self.ingress is None:
                error = NO_INGRESS
            else:
                targets = [self.ingress.id, *(t for t in targets if t != self.ingress.id)]
        for target in targets if error is None else ():
            pool = self.pools.get(target)
            if pool is None:
                error = f"network {target} not found"
                break
            address = pool.take()
            if address is None:
                error = f"no address left on network {pool.network.name} ({pool.subnet})"
                break
            config = configs.get(target)
            aliases = list(config.aliases or ()) if config else []
            attachments.append(
                NetworkAttachment(network=pool.network, addresses=[address], aliases=aliases)
            )
        if error is not None:
            for attachment in attachments:
                self.pools[attachment.network.id].release(attachment.addresses[0])
            self.result.waiting.append(task.id)
            if task.status.err != error:
                status = task.status.replace(err=error, timestamp=self.now)
                self.result.tasks.append(task.replace(status=status))
            return
        self.result.tasks.append(
            task.replace(status=self.pending, networks_attachments=attachments)
        )

    # Nodes

    def _keep_node(self, node: Node, in_use: list[str]) -> list[NodeAttachment]:
        kept: list[NodeAttachment] = []
        for attachment in node.attachments:
            network_id = attachment.network_id
            if (
                network_id in in_use
                and all(k.network_id != network_id for k in kept)
                and self.pools[network_id].reserve(attachment.address)
            ):
                kept.append(attachment)
        return kept

    def _node(self, node: Node, kept: list[NodeAttachment], in_use: list[str]) -> None:
        attachments = list(kept)
        if node.status.state is NodeState.READY:
            have = {a.network_id for a in kept}
            for network_id in in_use:
                if network_id in have:
                    continue
                address = self.pools[network_id].take()
                if address is None:
                    log.warning(
                        "allocator: no address left on network %s for node %s",
                        self.networks[network_id].name,
                        node.id,
                    )
                    continue
                attachments.append(NodeAttachment(network_id=network_id, address=address))
        if attachments != node.attachments:
            self.result.nodes.append(node.replace(attachments=attachments))


def allocate(state: ClusterState, now: datetime) -> Allocation:
    """Everything the cluster is missing, given out in one pass (see the module's doc)."""
    return _Pass(state, now).run()
