"""The scheduler's filters: can this task run on this node, and if not, why — in Swarm's words.

Each filter answers three questions, like SwarmKit's ``filter.go``: does it apply to the task
(``check_for`` returns None when not), does a node pass (the returned check), and how to
explain that it failed on N nodes. The explanations are the strings Swarm users see in
``docker service ps``, so they are kept word for word, odd grammar included.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import ClassVar

from swarmlet.errors import InvalidSpec
from swarmlet.genericresource import has_enough
from swarmlet.manager.scheduler.constraints import Constraint, constraints_match, parse_constraints
from swarmlet.manager.scheduler.nodeinfo import (
    NodeInfo,
    generic_reservations,
    host_ports,
    reservations,
)
from swarmlet.models import Task

NodeCheck = Callable[[NodeInfo], bool]


def _on_nodes(what: str, nodes: int) -> str:
    return f"{what} on 1 node" if nodes == 1 else f"{what} on {nodes} nodes"


class Filter(ABC):
    # A static verdict depends only on the task's spec and the node object, never on the
    # tasks placed so far, so the scheduler computes it once per group of identical tasks.
    static: ClassVar[bool] = False

    @abstractmethod
    def check_for(self, task: Task) -> NodeCheck | None:
        """This filter's check bound to the task, or None when it does not apply to the task."""

    @abstractmethod
    def explain(self, nodes: int) -> str:
        """Why the task cannot run, when this filter rejected ``nodes`` nodes."""

    def static_key(self, task: Task) -> Hashable:
        """For a static filter: all that its verdict reads from the task. Tasks with equal keys
        get equal verdicts on a node, so the scheduler shares them (across services too)."""
        raise NotImplementedError(f"{self!r} is not static")

    def __repr__(self) -> str:
        return type(self).__name__


class ReadyFilter(Filter):
    """The node is ready and active (not down, paused or drained)."""

    static = True

    def check_for(self, task: Task) -> NodeCheck | None:
        return _node_available

    def static_key(self, task: Task) -> Hashable:
        return None

    def explain(self, nodes: int) -> str:
        if nodes == 1:
            return "1 node not available for new tasks"
        return f"{nodes} nodes not available for new tasks"


def _node_available(info: NodeInfo) -> bool:
    return info.node.is_available()


class ResourceFilter(Filter):
    """The task's reservations fit in what the node's active tasks have left free: CPUs,
    memory, and each generic resource it reserves, in the count it reserves (SwarmKit's
    ``HasEnough``: a kind the node lacks, or has used up, fits nothing)."""

    def check_for(self, task: Task) -> NodeCheck | None:
        nano_cpus, memory_bytes = reservations(task.spec)
        want = generic_reservations(task.spec)
        if nano_cpus == 0 and memory_bytes == 0 and not want:
            return None

        def fits(info: NodeInfo) -> bool:
            return nano_cpus <= info.free_nano_cpus and memory_bytes <= info.free_memory_bytes

        if not want:
            return fits

        def fits_generic(info: NodeInfo) -> bool:
            return fits(info) and has_enough(info.free_generic, want)

        return fits_generic

    def explain(self, nodes: int) -> str:
        return _on_nodes("insufficient resources", nodes)


@lru_cache(maxsize=1024)
def _parsed(expressions: tuple[str, ...]) -> tuple[Constraint, ...] | None:
    try:
        return tuple(parse_constraints(expressions))
    except InvalidSpec:
        return None


class ConstraintFilter(Filter):
    """The node satisfies every placement constraint of the task."""

    static = True

    def check_for(self, task: Task) -> NodeCheck | None:
        placement = task.spec.placement
        if placement is None or not placement.constraints:
            return None
        constraints = _parsed(tuple(placement.constraints))
        if constraints is None:
            # The API validates constraints; one that slipped through is ignored, as SwarmKit
            # does, rather than making the task unplaceable with a misleading explanation.
            return None

        def satisfied(info: NodeInfo) -> bool:
            return constraints_match(constraints, info.node)

        return satisfied

    def static_key(self, task: Task) -> Hashable:
        placement = task.spec.placement
        return tuple(placement.constraints) if placement is not None else ()

    def explain(self, nodes: int) -> str:
        return _on_nodes("scheduling constraints not satisfied", nodes)


class HostPortFilter(Filter):
    """None of the task's host-mode published ports is bound on the node by an active task."""

    def check_for(self, task: Task) -> NodeCheck | None:
        ports = host_ports(task.endpoint_spec)
        if not ports:
            return None

        def free(info: NodeInfo) -> bool:
            return ports.isdisjoint(info.used_host_ports)

        return free

    def explain(self, nodes: int) -> str:
        return _on_nodes("host-mode port already in use", nodes)


class MaxReplicasFilter(Filter):
    """The node runs fewer active tasks of the service than ``Placement.MaxReplicas``."""

    def check_for(self, task: Task) -> NodeCheck | None:
        placement = task.spec.placement
        if placement is None or placement.max_replicas <= 0:
            return None
        service_id, limit = task.service_id, placement.max_replicas

        def below_limit(info: NodeInfo) -> bool:
            return info.tasks_of_service(service_id) < limit

        return below_limit

    def explain(self, nodes: int) -> str:
        # Swarm's words, without a count.
        return "max replicas per node limit exceed"
