"""The global orchestrator's decisions: one current task on every eligible node.

A node takes a new task when it is not Down, its availability is active and it satisfies the
service's placement constraints. Its task is shut down when it is drained, goes Down or no
longer satisfies the constraints (a paused node keeps what it runs but takes nothing new), and
marked REMOVE when the node leaves the swarm. Tasks are created with their node preset; the
scheduler only confirms them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarmlet.manager.orchestrator.plan import InstanceKey, Memory, Now, Plan, is_current
from swarmlet.manager.orchestrator.restart import (
    SELF_ENDED,
    recover_restarts,
    start_due_restarts,
    start_ready,
    supervise,
    wants_restart,
)
from swarmlet.manager.orchestrator.update import roll
from swarmlet.manager.scheduler.constraints import (
    Constraint,
    constraints_match,
    parse_constraints,
)
from swarmlet.models import Node, NodeAvailability, NodeState, Service, Task, TaskState


def reconcile_global(
    service: Service,
    tasks: Iterable[Task],
    nodes: Mapping[str, Node],
    now: Now,
    memory: Memory | None = None,
) -> Plan:
    """Everything to change for one global service, given its tasks and the nodes.

    Raises InvalidSpec when the service's placement constraints do not parse.
    """
    placement = service.spec.task_template.placement
    constraints = parse_constraints(placement.constraints if placement else [])
    plan = Plan(service, tasks, now, memory or Memory())

    def takes_tasks(node_id: InstanceKey | None) -> bool:
        """The eligibility ``place`` uses: whether the node may take a new task."""
        return node_id is not None and _takes_tasks(nodes.get(str(node_id)), constraints)

    stop_misplaced(plan, nodes, constraints)
    supervise(plan, can_replace=lambda task: takes_tasks(task.node_id))
    recover_restarts(plan, can_start=takes_tasks)
    start_due_restarts(plan, can_start=takes_tasks)
    place(plan, nodes, constraints)
    roll(plan)
    start_ready(plan, nodes)
    return plan


def _keeps_tasks(node: Node, constraints: list[Constraint]) -> bool:
    return (
        node.status.state != NodeState.DOWN
        and node.spec.availability != NodeAvailability.DRAIN
        and constraints_match(constraints, node)
    )


def _takes_tasks(node: Node | None, constraints: list[Constraint]) -> bool:
    return (
        node is not None
        and node.status.state != NodeState.DOWN
        and node.spec.availability == NodeAvailability.ACTIVE
        and constraints_match(constraints, node)
    )


def stop_misplaced(plan: Plan, nodes: Mapping[str, Node], constraints: list[Constraint]) -> None:
    """Shut down the tasks of nodes that may no longer run them; REMOVE those of gone nodes."""
    for node_id, tasks in plan.instances().items():
        node = nodes.get(str(node_id))
        if node is None:
            for task in tasks:
                plan.set_desired(task, TaskState.REMOVE)
        elif not _keeps_tasks(node, constraints):
            for task in tasks:
                if is_current(task):
                    plan.set_desired(task, TaskState.SHUTDOWN)


def is_stopped(plan: Plan, tasks: list[Task]) -> bool:
    """Whether a node's task ended and the restart policy chose to leave it so (under the
    current spec). A task shut down because its node could not keep it does not count: it did
    not end by itself."""
    return not any(is_current(task) for task in tasks) and any(
        task.state in SELF_ENDED and not plan.is_dirty(task) and not wants_restart(plan, task)
        for task in tasks
    )


def place(plan: Plan, nodes: Mapping[str, Node], constraints: list[Constraint]) -> None:
    """A task for every node that takes tasks and has none (and did not stop for good, nor
    waits for the restart delay of its ended task)."""
    instances = plan.instances()
    for node_id in sorted(nodes):
        if not _takes_tasks(nodes[node_id], constraints):
            continue
        tasks = instances.get(node_id, [])
        if any(is_current(task) for task in tasks) or is_stopped(plan, tasks):
            continue
        if node_id in plan.memory.restart_at:
            continue  # start_due_restarts creates its task once the delay has passed
        plan.new_task(node_id)
