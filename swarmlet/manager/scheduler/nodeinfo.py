"""A node as the scheduler sees it while deciding: what is left on it and what runs there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from swarmlet import genericresource
from swarmlet.genericresource import FreeTable, Wanted
from swarmlet.models import GenericResource, Node, Task, TaskSpec, TaskState
from swarmlet.models.service import EndpointSpec

# A set lookup is cheaper than TaskState's comparisons, for every placed task of every pass.
TERMINAL_STATES = frozenset(state for state in TaskState if state.is_terminal)


def reservations(spec: TaskSpec) -> tuple[int, int]:
    """The (NanoCPUs, MemoryBytes) a task reserves on its node."""
    resources = spec.resources
    if resources is None or resources.reservations is None:
        return 0, 0
    return resources.reservations.nano_cpus, resources.reservations.memory_bytes


def generic_reservations(spec: TaskSpec) -> Wanted:
    """The generic resources a task reserves on its node, as (kind, count) pairs."""
    resources = spec.resources
    if resources is None or resources.reservations is None:
        return ()
    return genericresource.wanted(resources.reservations.generic_resources)


# A port a task binds on its node's own addresses: (protocol, published port).
HostPort = tuple[str, int]


def host_ports(endpoint_spec: EndpointSpec | None) -> frozenset[HostPort]:
    """The host-mode ports a task of this endpoint spec binds on its node (a port left to the
    engine's choice, published 0, binds none that another task could want)."""
    if endpoint_spec is None:
        return frozenset()
    return frozenset(
        (str(port.protocol), port.published_port)
        for port in endpoint_spec.host_mode_ports()
        if port.published_port
    )


@dataclass(slots=True, eq=False)
class NodeInfo:
    """Working state for one ``schedule`` call; it changes as tasks are placed on the node.

    A task counts ("active") from the moment it is given the node until it is terminal: it
    holds its reservations and its place in the spread until its process is gone for good.
    """

    node: Node
    free_nano_cpus: int
    free_memory_bytes: int
    active_tasks: int = 0
    active_by_service: dict[str, int] = field(default_factory=dict)
    used_host_ports: set[HostPort] = field(default_factory=set)
    # The generic resources its active tasks leave free; None when it advertises none.
    free_generic: FreeTable | None = None

    @classmethod
    def of(cls, node: Node, tasks: Iterable[Task] = ()) -> NodeInfo:
        resources = node.description.resources
        info = cls(node, resources.nano_cpus, resources.memory_bytes)
        if resources.generic_resources:
            info.free_generic = genericresource.free_table(resources.generic_resources)
        for task in tasks:
            if not task.state.is_terminal:
                info.add(task)
        return info

    @property
    def id(self) -> str:
        return self.node.id

    def add(self, task: Task) -> list[GenericResource] | None:
        """Count a task placed on the node. A new one (not yet given generic resources) is
        given what it reserves, returned; one placed before holds what it was given."""
        self.reserve(task.service_id, *reservations(task.spec), host_ports(task.endpoint_spec))
        want = generic_reservations(task.spec)
        return self.take_generic(task, want) if want else None

    def take_generic(self, task: Task, want: Wanted) -> list[GenericResource] | None:
        """Count the generic resources a task on this node holds: what it was given here, or,
        for one given nothing here yet, a claim of what it reserves (returned)."""
        if task.assigned_generic_resources is not None and task.node_id == self.node.id:
            self.hold(task.assigned_generic_resources)
            return None
        return self.claim(want)

    def claim(self, want: Wanted) -> list[GenericResource]:
        """Give a task placed here the generic resources it reserves (SwarmKit's ``Claim``)."""
        if self.free_generic is None:
            return []
        return genericresource.claim(self.free_generic, want)

    def hold(self, assigned: list[GenericResource]) -> None:
        """What an active task was given is not free."""
        if self.free_generic is not None:
            genericresource.consume(self.free_generic, assigned)

    def reserve(
        self,
        service_id: str,
        nano_cpus: int,
        memory_bytes: int,
        ports: frozenset[HostPort] = frozenset(),
    ) -> None:
        """Count one more active task of the service, holding these reservations and ports."""
        if ports:
            self.used_host_ports |= ports
        self.free_nano_cpus -= nano_cpus
        self.free_memory_bytes -= memory_bytes
        self.active_tasks += 1
        by_service = self.active_by_service
        by_service[service_id] = by_service.get(service_id, 0) + 1

    def tasks_of_service(self, service_id: str) -> int:
        return self.active_by_service.get(service_id, 0)


def node_infos(nodes: Iterable[Node], placed: Iterable[Task]) -> dict[str, NodeInfo]:
    """Every node's NodeInfo, by node ID, with the active tasks already placed on it."""
    infos = {node.id: NodeInfo.of(node) for node in nodes}
    # Tasks of a service share their spec object: read its reservations once. (Keyed by id():
    # every spec stays alive in ``placed`` for the whole loop.)
    reserved: dict[int, tuple[int, int, Wanted]] = {}
    for task in placed:
        info = infos.get(task.node_id or "")
        if info is None or task.status.state in TERMINAL_STATES:
            continue
        spec = task.spec
        amounts = reserved.get(id(spec))
        if amounts is None:
            amounts = reserved[id(spec)] = (*reservations(spec), generic_reservations(spec))
        nano_cpus, memory_bytes, generic = amounts
        info.reserve(task.service_id, nano_cpus, memory_bytes, host_ports(task.endpoint_spec))
        if generic:
            # Free is what the node has minus what its active tasks were given (one placed
            # without a record of it holds what it reserves).
            info.take_generic(task, generic)
    return infos
