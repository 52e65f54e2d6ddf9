"""What a settled cluster must look like, as plain checks over the store's objects and the
simulated engines: each returns the problems it finds (none when all is exact)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping

from swarmlet.agent.executor import LABEL_TASK_ID
from swarmlet.models import Node, NodeAvailability, NodeState, Task, TaskState
from swarmlet.sim.engine import SimulatedEngine

SHOWN = 5  # examples shown of each problem


def _some(items: Iterable[object]) -> str:
    items = list(items)
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(map(str, items[:SHOWN])) + more


def live(tasks: Iterable[Task]) -> list[Task]:
    """The tasks the manager wants running."""
    return [task for task in tasks if task.desired_state == TaskState.RUNNING]


def duplicated_slots(tasks: Iterable[Task]) -> list[str]:
    """Slots with more than one task desired running: never allowed, even mid-change."""
    counts = Counter((task.service_id, task.slot) for task in live(tasks))
    duplicated = [key for key, count in counts.items() if count > 1]
    return [f"slots with several live tasks: {_some(duplicated)}"] if duplicated else []


def running_containers(engines: Mapping[str, SimulatedEngine]) -> set[tuple[str, str]]:
    """(node ID, task ID) of every simulated process running."""
    return {
        (node_id, container.labels.get(LABEL_TASK_ID, ""))
        for node_id, engine in engines.items()
        for container in engine.containers.values()
        if container.state == "running"
    }


def settled_problems(
    tasks: Collection[Task],
    nodes: Mapping[str, Node],
    engines: Mapping[str, SimulatedEngine],
    replicas: Mapping[str, int],
) -> list[str]:
    """What differs from exactly ``replicas`` tasks per service (by ID), each in its own slot,
    running on a Ready, Active node, with exactly one simulated process per RUNNING task."""
    problems = duplicated_slots(tasks)
    wanted = live(tasks)
    if len(wanted) != sum(replicas.values()):
        problems.append(f"{len(wanted)} tasks desired running, not {sum(replicas.values())}")
    per_service = Counter(task.service_id for task in wanted)
    slots = {(task.service_id, task.slot) for task in wanted}
    for service_id, count in replicas.items():
        if per_service[service_id] != count:
            problems.append(f"service {service_id}: {per_service[service_id]} tasks, not {count}")
        if len({slot for sid, slot in slots if sid == service_id}) != count:
            problems.append(f"service {service_id}: not {count} distinct slots")
    strays = set(per_service) - set(replicas)
    if strays:
        problems.append(f"tasks desired running for other services: {_some(strays)}")
    not_running = [task.id for task in wanted if task.status.state != TaskState.RUNNING]
    if not_running:
        problems.append(f"{len(not_running)} live tasks not RUNNING: {_some(not_running)}")
    misplaced = [task.id for task in wanted if not _usable(nodes.get(task.node_id or ""))]
    if misplaced:
        problems.append(f"live tasks on no Ready, Active node: {_some(misplaced)}")
    reported = {(t.node_id or "", t.id) for t in tasks if t.status.state == TaskState.RUNNING}
    processes = running_containers(engines)
    if processes != reported:
        problems.append(
            f"{len(processes)} processes for {len(reported)} RUNNING tasks;"
            f" without a task: {_some(processes - reported)};"
            f" without a process: {_some(reported - processes)}"
        )
    return problems


def _usable(node: Node | None) -> bool:
    return (
        node is not None
        and node.status.state == NodeState.READY
        and node.spec.availability == NodeAvailability.ACTIVE
    )


def left_behind(tasks: Collection[Task], engines: Mapping[str, SimulatedEngine]) -> list[str]:
    """What remains once every service is removed and reaped: it should be nothing."""
    problems = []
    if tasks:
        states = Counter(f"{t.status.state}/{t.desired_state}" for t in tasks)
        problems.append(f"{len(tasks)} tasks left: {_some(states.items())}")
    containers = {n: len(e.containers) for n, e in engines.items() if e.containers}
    if containers:
        problems.append(f"containers left on {len(containers)} nodes: {_some(containers.items())}")
    return problems
