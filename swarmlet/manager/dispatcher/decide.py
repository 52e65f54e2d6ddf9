"""The dispatcher's decisions, without I/O: which nodes missed their heartbeats, which status
updates to accept, what a node is assigned (its tasks, and the secrets and configs they use),
and which managers the agents are told of."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from swarmlet.models import Config, Node, NodeState, Secret, Task, TaskState, TaskStatus

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


def next_expiry(
    nodes: Iterable[Node], last_seen: Mapping[str, float], now: float, period: float
) -> float:
    """Seconds until the first node not yet Down outlives its grace (the grace if none is up)."""
    soonest = min(
        (last_seen.get(node.id, now) for node in nodes if node.status.state != NodeState.DOWN),
        default=now,
    )
    return max(0.0, soonest + MISSED_HEARTBEATS * period - now)


def seen_when_session_lost(last_seen: float, now: float, period: float) -> float:
    """When a node whose session just ended counts as last seen: early enough that it is
    Down one heartbeat period from now unless it opens a new session.

    A daemon that crashes or stops has its connections closed by the kernel at once; waiting
    the full grace for heartbeats that cannot come would leave its tasks stranded for up to
    three periods. A period is ample for an agent that is still alive to reconnect (it retries
    within two seconds). A host that vanishes without closing anything still gets the grace.
    """
    return min(last_seen, now - (MISSED_HEARTBEATS - 1) * period)


def manager_addrs(nodes: Iterable[Node]) -> list[str]:
    """Where agents may open their sessions: every manager node's ``ManagerStatus.Addr`` (its
    port 2377), sorted; a manager whose address is not known yet is left out."""
    return sorted(
        {
            node.manager_status.addr
            for node in nodes
            if node.manager_status is not None and node.manager_status.addr
        }
    )


def accept_status(task: Task, node_id: str, status: TaskStatus) -> Task | None:
    """The task with the agent's status applied, or None when the update must be ignored:
    from another node than the task's (a stale agent), about an attachment (no agent runs
    one), or moving the task backwards."""
    if task.node_id != node_id or task.is_attachment:
        return None
    if status.state < task.status.state:
        return None
    if status == task.status:
        return None
    return task.replace(status=status)


def is_assigned(task: Task) -> bool:
    """Whether the task belongs in its node's assignment set: placed by the scheduler (global
    tasks carry a node before that, and must not be started before they are accepted). An
    attachment never is: a worker must not run it as a container."""
    return (
        task.node_id is not None
        and task.status.state >= TaskState.ASSIGNED
        and not task.is_attachment
    )


def assignments(tasks: Iterable[Task]) -> list[Task]:
    return sorted((task for task in tasks if is_assigned(task)), key=lambda task: task.id)


class Changes(NamedTuple):
    tasks: list[Task]  # new, or at another version
    removed: list[str]  # the IDs of those no longer assigned


def changes(sent: Mapping[str, int], tasks: Sequence[Task]) -> Changes:
    """What changed in a node's assigned ``tasks`` since it was sent ``sent`` (each task's
    version, by ID)."""
    now = {task.id for task in tasks}
    return Changes(
        [task for task in tasks if sent.get(task.id) != task.version.index],
        [task_id for task_id in sent if task_id not in now],
    )


class Dependencies(NamedTuple):
    secrets: list[Secret]
    configs: list[Config]


def references(task: Task) -> tuple[set[str], set[str]]:
    """The IDs of the secrets and of the configs the task needs on its node: none once it is
    terminal (as SwarmKit, whose dispatcher releases a task's dependencies when it ends)."""
    if task.status.state.is_terminal:
        return set(), set()
    container = task.spec.container_spec
    return (
        {ref.secret_id for ref in container.secrets or ()},
        {ref.config_id for ref in container.configs or ()},
    )


def dependencies(
    tasks: Iterable[Task], secrets: Mapping[str, Secret], configs: Mapping[str, Config]
) -> Dependencies:
    """What goes with a node's assignment set: exactly the secrets and configs (by ID) its
    tasks reference. One missing from ``secrets``/``configs`` (removed since) is left out: the
    agent then rejects a task that needs it."""
    secret_ids: set[str] = set()
    config_ids: set[str] = set()
    for task in tasks:
        task_secrets, task_configs = references(task)
        secret_ids |= task_secrets
        config_ids |= task_configs
    return Dependencies(
        secrets=[secrets[i] for i in sorted(secret_ids) if i in secrets],
        configs=[configs[i] for i in sorted(config_ids) if i in configs],
    )


def releases_dependencies(task: Task) -> bool:
    """Whether the task, as a report left it, no longer holds secrets or configs it held:
    its node's assignment set loses them (see ``references``)."""
    container = task.spec.container_spec
    return task.status.state.is_terminal and bool(container.secrets or container.configs)


def nodes_using(object_id: str, tasks: Iterable[Task]) -> set[str]:
    """The nodes sent the secret or config ``object_id`` with their assignments: those with an
    assigned task that references it. They are sent their assignments again when it changes."""
    nodes: set[str] = set()
    for task in tasks:
        if task.node_id is None or not is_assigned(task):
            continue
        secret_ids, config_ids = references(task)
        if object_id in secret_ids or object_id in config_ids:
            nodes.add(task.node_id)
    return nodes
