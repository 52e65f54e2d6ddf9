"""The dispatcher's decisions, without I/O: which nodes missed their heartbeats, which status
updates to accept, and what a node is assigned."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarmlet.models import Node, NodeState, Task, TaskState, TaskStatus

# A node is Down after this many heartbeat periods without a word (Swarm's default).
MISSED_HEARTBEATS = 3


def expired_nodes(
    nodes: Iterable[Node], last_seen: Mapping[str, float], now: float, period: float
) -> list[Node]:
    """Nodes not yet Down whose last heartbeat is older than the grace."""
    grace = MISSED_HEARTBEATS * period
    return [
        node
        for node in nodes
        if node.status.state != NodeState.DOWN and now - last_seen.get(node.id, now) > grace
    ]


def accept_status(task: Task, node_id: str, status: TaskStatus) -> Task | None:
    """The task with the agent's status applied, or None when the update must be ignored:
    from another node than the task's (a stale agent), or moving the task backwards."""
    if task.node_id != node_id:
        return None
    if status.state < task.status.state:
        return None
    if status == task.status:
        return None
    return task.replace(status=status)


def is_assigned(task: Task) -> bool:
    """Whether the task belongs in its node's assignment set: placed by the scheduler (global
    tasks carry a node before that, and must not be started before they are accepted)."""
    return task.node_id is not None and task.status.state >= TaskState.ASSIGNED


def assignments(tasks: Iterable[Task]) -> list[Task]:
    return sorted((task for task in tasks if is_assigned(task)), key=lambda task: task.id)
