"""The scheduler's decision: which node each pending task goes to, or why none can take it.

A pure function of plain objects (no store, no await), so it is tested with plain objects and
Hypothesis, and a placement can be replayed from its inputs.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from swarmlet.manager.scheduler.nodeinfo import NodeInfo, node_infos
from swarmlet.manager.scheduler.pipeline import (
    DEFAULT_PIPELINE,
    Pipeline,
    TaskChecks,
    no_suitable_node,
)
from swarmlet.manager.scheduler.spread import SpreadQueue
from swarmlet.models import Node, Task, TaskSpec


@dataclass(frozen=True, slots=True)
class Decision:
    """``node_id`` set: the task goes there. Otherwise ``error`` says why no node can take it."""

    task_id: str
    node_id: str | None
    error: str | None

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
    for task in tasks:
        candidates = by_version.setdefault((task.service_id, task.spec_version.index), [])
        # The spec version almost always decides; comparing the specs keeps tasks written
        # without one (version 0) apart when their specs differ.
        group = next((g for g in candidates if g.spec is task.spec or g.spec == task.spec), None)
        if group is None:
            group = _Group(task.service_id, task.spec)
            candidates.append(group)
            groups.append(group)
        group.tasks.append(task)
    return groups


def _fit_preset(task: Task, node: NodeInfo, pipeline: Pipeline) -> Decision:
    checks = pipeline.checks_for(task)
    if checks.passes(node):
        node.add(task)
        return Decision(task.id, node.id, None)
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
    first = group.tasks[0]
    checks = pipeline.checks_for(first)
    static, dynamic = checks.static(), checks.dynamic()
    queue = SpreadQueue(group.service_id, eligible.of(first, static))
    decisions: list[Decision] = []
    error: str | None = None
    for task in group.tasks:
        if error is None:
            node = queue.take(random.Random(task.id), dynamic)
            if node is not None:
                node.add(task)
                queue.put(node)
                decisions.append(Decision(task.id, node.id, None))
                continue
            # Nothing the rest of the group would do differently: explain once, for all.
            error = no_suitable_node(checks.explain(nodes.values()))
        decisions.append(Decision(task.id, None, error))
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
