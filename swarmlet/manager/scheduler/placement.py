"""The scheduler's decision: which node each pending task goes to, or why none can take it.

A pure function of plain objects (no store, no await), so it is tested with plain objects and
Hypothesis, and a placement can be replayed from its inputs.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from swarmlet.manager.scheduler.nodeinfo import (
    NodeInfo,
    generic_reservations,
    host_ports,
    node_infos,
    reservations,
)
from swarmlet.manager.scheduler.pipeline import (
    DEFAULT_PIPELINE,
    Pipeline,
    TaskChecks,
    no_suitable_node,
)
from swarmlet.manager.scheduler.preferences import PreferenceTree, spread_labels
from swarmlet.manager.scheduler.spread import SpreadQueue, seed_of
from swarmlet.models import GenericResource, Node, Task, TaskSpec


@dataclass(frozen=True, slots=True)
class Decision:
    """``node_id`` set: the task goes there. Otherwise ``error`` says why no node can take it."""

    task_id: str
    node_id: str | None
    error: str | None
    # Placed: the generic resources the task is given on the node (None if it reserves none).
    generic: list[GenericResource] | None = None

    @property
    def placed(self) -> bool:
        return self.node_id is not None


@dataclass(slots=True)
class _Group:
    """Tasks of one service with the same spec: they share every static filter verdict."""

    service_id: str
    spec: TaskSpec
    tasks: list[Task] = field(default_factory=list)


def _groups(tasks: Sequence[Task]) -> list[_Group]:
    """Tasks grouped by service and spec, groups and tasks in the order they come."""
    by_version: dict[tuple[str, int], list[_Group]] = {}
    groups: list[_Group] = []
    last: _Group | None = None
    last_key: tuple[str, int] | None = None
    for task in tasks:
        spec, key = task.spec, (task.service_id, task.spec_version.index)
        # Fast path: a service's tasks come together and share one spec object.
        if last is not None and last.spec is spec and last_key == key:
            last.tasks.append(task)
            continue
        candidates = by_version.setdefault(key, [])
        # The spec version almost always decides; comparing the specs keeps tasks written
        # without one (version 0) apart when their specs differ.
        for group in candidates:
            if group.spec is spec or group.spec == spec:
                break
        else:
            group = _Group(task.service_id, spec)
            candidates.append(group)
            groups.append(group)
        group.tasks.append(task)
        last, last_key = group, key
    return groups


def _fit_preset(task: Task, node: NodeInfo, pipeline: Pipeline) -> Decision:
    checks = pipeline.checks_for(task)
    if checks.passes(node):
        return Decision(task.id, node.id, None, node.add(task))
    # SwarmKit gives a preset task the bare explanation ("1 node not available for new
    # tasks"): the node was not chosen, so "no suitable node" would mislead.
    return Decision(task.id, None, checks.explain([node]))


class _Eligible:
    """The nodes that pass a task's static filters, shared by every group with the same
    static keys: services without constraints all share one list, computed once."""

    def __init__(self, nodes: dict[str, NodeInfo]) -> None:
        self._nodes = nodes
        self._cache: dict[Hashable, list[NodeInfo]] = {}

    def of(self, task: Task, static: TaskChecks) -> list[NodeInfo]:
        key = tuple((filter_, filter_.static_key(task)) for filter_, _ in static.checks)
        eligible = self._cache.get(key)
        if eligible is None:
            eligible = [node for node in self._nodes.values() if static.passes(node)]
            self._cache[key] = eligible
        return eligible


def _place_group(
    group: _Group, nodes: dict[str, NodeInfo], eligible: _Eligible, pipeline: Pipeline
) -> list[Decision]:
    """Place a group as a batch: the filters that apply, the static verdicts, the
    reservations and the candidates are worked out once; each task then costs a few heap
    and dict operations, whatever the number of nodes."""
    first, service_id, tasks = group.tasks[0], group.service_id, group.tasks
    checks = pipeline.checks_for(first)
    static, dynamic = checks.static(), checks.dynamic()
    candidates = eligible.of(first, static)
    labels = spread_labels(group.spec)
    queue: SpreadQueue | PreferenceTree
    if labels:
        rng = random.Random(seed_of(first.id))
        queue = PreferenceTree(service_id, labels, nodes.values(), candidates, rng)
    else:
        queue = SpreadQueue(service_id, candidates)
    passes = dynamic.passes if dynamic.checks else None
    nano_cpus, memory_bytes = reservations(group.spec)
    ports = host_ports(first.endpoint_spec)
    generic = generic_reservations(group.spec)
    decisions: list[Decision] = []
    append = decisions.append
    for index, task in enumerate(tasks):
        node = queue.take(seed_of(task.id), passes)
        if node is None:
            # Nothing the rest of the group would do differently: explain once, for all.
            error = no_suitable_node(checks.explain(nodes.values()))
            decisions.extend(Decision(rest.id, None, error) for rest in tasks[index:])
            break
        node.reserve(service_id, nano_cpus, memory_bytes, ports)
        queue.put(node)
        append(Decision(task.id, node.node.id, None, node.claim(generic) if generic else None))
    return decisions


def schedule(
    pending: Sequence[Task],
    nodes: Sequence[Node],
    placed: Sequence[Task],
    pipeline: Pipeline = DEFAULT_PIPELINE,
) -> list[Decision]:
    """Decide where each pending task runs.

    ``placed`` are the tasks already on nodes: their reservations, spread and replicas per
    node count while they are not terminal. A pending task with ``node_id`` set (a global
    service's) is only checked against that node; one whose node is not among ``nodes`` gets
    no decision. Decisions come in the order they were made (preset tasks first), each one
    counted for those after it.
    """
    infos = node_infos(nodes, placed)
    decisions: list[Decision] = []
    for task in pending:
        if task.node_id:
            node = infos.get(task.node_id)
            if node is not None:
                decisions.append(_fit_preset(task, node, pipeline))
    eligible = _Eligible(infos)
    for group in _groups([task for task in pending if not task.node_id]):
        decisions.extend(_place_group(group, infos, eligible, pipeline))
    return decisions
