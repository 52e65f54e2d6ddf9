"""How a user's reference finds an object: full ID, then name, then a unique ID prefix.

The order and the words are daemon/cluster's getService/getNode/getTask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from swarmlet.errors import InvalidSpec, NotFound
from swarmlet.models import Node, Service, StoredObject, Task

T = TypeVar("T", bound=StoredObject)


def resolve(
    kind: str, ref: str, candidates: Sequence[T], names_of: Callable[[T], Iterable[str]]
) -> T:
    if ref:
        for candidate in candidates:
            if candidate.id == ref:
                return candidate
        matches = [c for c in candidates if ref in names_of(c)]
        if not matches:
            matches = [c for c in candidates if c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidSpec(f"{kind} {ref} is ambiguous ({len(matches)} matches found)")
    raise NotFound(f"{kind} {ref} not found")


def service_names(service: Service) -> tuple[str, ...]:
    return (service.spec.name,)


def node_names(node: Node) -> tuple[str, ...]:
    return tuple(name for name in (node.spec.name, node.description.hostname) if name)


def task_name(task: Task) -> str:
    """The name Swarm gives a task: `<service>.<slot or node ID>.<task ID>` unless it has one."""
    if task.name:
        return task.name
    slot_or_node = str(task.slot) if task.slot else (task.node_id or "")
    return f"{task.service_name}.{slot_or_node}.{task.id}"


def task_names(task: Task) -> tuple[str, ...]:
    return (task_name(task),)
