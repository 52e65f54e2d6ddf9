"""The replicated orchestrator's decisions: slots 1..Replicas, each with one current task.

A slot exists while it has a live task (one not marked REMOVE). A slot whose tasks all stopped
and were not restarted (restart condition ``none``, a clean exit under ``on-failure``,
MaxAttempts reached) keeps its place and stays stopped until the spec changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarmlet.manager.orchestrator.plan import (
    InstanceKey,
    Memory,
    Now,
    Plan,
    instance_order,
    is_current,
)
from swarmlet.manager.orchestrator.restart import (
    recover_restarts,
    start_due_restarts,
    start_ready,
    supervise,
)
from swarmlet.manager.orchestrator.update import roll
from swarmlet.models import Node, NodeAvailability, NodeState, Service, Task, TaskState


def reconcile_replicated(
    service: Service,
    tasks: Iterable[Task],
    nodes: Mapping[str, Node],
    now: Now,
    memory: Memory | None = None,
) -> Plan:
    """Everything to change for one replicated service, given its tasks and the nodes."""
    plan = Plan(service, tasks, now, memory or Memory())
    scale(plan)
    fail_over(plan, nodes)
    supervise(plan, can_replace=lambda task: True)
    recover_restarts(plan, can_start=lambda slot: True)
    start_due_restarts(plan, can_start=lambda slot: True)
    roll(plan)
    start_ready(plan, nodes)
    return plan


def scale(plan: Plan) -> None:
    """Bring the number of slots to the service's replicas, and start stopped slots again once
    the spec has changed."""
    slots = plan.instances()
    wanted = plan.service.replicas
    if len(slots) > wanted:
        for slot in surplus_slots(slots, len(slots) - wanted):
            for task in slots.pop(slot):
                plan.set_desired(task, TaskState.REMOVE)
    for slot, tasks in slots.items():
        if not any(is_current(task) for task in tasks) and all(map(plan.is_dirty, tasks)):
            plan.new_task(slot)
    free = (n for n in range(1, wanted + len(slots) + 1) if n not in slots)
    for _ in range(wanted - len(slots)):
        plan.new_task(next(free))


def surplus_slots(slots: Mapping[InstanceKey, list[Task]], count: int) -> list[InstanceKey]:
    """The slots to remove when scaling down: first those with no placed task (nothing runs
    there), then from the nodes with the most tasks of the service, then the highest numbers.

    Taking one slot at a time from the fullest node is the same as ranking each node's slots
    (its highest slot ranks as the node's count of slots, the next one less, and so on) and
    taking the highest ranks first.
    """
    by_node: dict[str | None, list[InstanceKey]] = {}
    for slot, tasks in slots.items():
        placed = [t.node_id for t in tasks if is_current(t) and t.node_id is not None]
        by_node.setdefault(placed[0] if placed else None, []).append(slot)
    ranked: list[tuple[bool, int, tuple[int, str], InstanceKey]] = []
    for node_id, node_slots in by_node.items():
        node_slots.sort(key=instance_order)
        for rank, slot in enumerate(node_slots, start=1):
            ranked.append((node_id is None, rank, instance_order(slot), slot))
    ranked.sort(reverse=True)
    return [slot for *_, slot in ranked[:count]]


def is_usable(node: Node | None) -> bool:
    """Whether tasks may stay on the node: it exists, is not Down and is not drained."""
    return (
        node is not None
        and node.status.state != NodeState.DOWN
        and node.spec.availability != NodeAvailability.DRAIN
    )


def fail_over(plan: Plan, nodes: Mapping[str, Node]) -> None:
    """Replace the tasks of Down, drained or removed nodes at once, in the same slot.

    Unlike Swarm, the replacement gets no restart delay and does not wait for the old task to
    stop: the delay is there to slow crash loops, not to hold back failover. Tasks are never
    moved back when a node returns.
    """
    for task in plan.tasks():
        if not is_current(task) or task.node_id is None or task.state.is_terminal:
            continue
        if is_usable(nodes.get(task.node_id)):
            continue
        plan.set_desired(task, TaskState.SHUTDOWN)
        slot = plan.key(task)
        if slot is not None and not any(is_current(t) for t in plan.instance(slot)):
            plan.new_task(slot)
