"""Placement preferences: a service's tasks spread evenly over the values of node labels.

``docker service create --placement-pref spread=node.labels.zone`` (spread is Swarm's only
kind). As in SwarmKit (``nodeset.go`` ``tree``, ``scheduler.go`` ``scheduleNTasksOnSubtree``),
the nodes form a tree with one level per preference and one branch per value of its label;
nodes that lack the label share the branch ``""``. A branch counts the service's active tasks
on all its nodes, whether or not they can take more. Each task goes down the branch with the
fewest of the service's tasks, level by level, then to the least loaded node of that branch
(``SpreadQueue``). A branch none of whose nodes can take the task is left out for the rest of
the group, and the other branches share its part.

Only ``node.labels.<label>`` and ``engine.labels.<label>`` can be spread over (the prefix in
any case, the label name as written); SwarmKit ignores any other descriptor, and so does this.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable

from swarmlet.manager.scheduler.constraints import ENGINE_LABEL_PREFIX, NODE_LABEL_PREFIX
from swarmlet.manager.scheduler.nodeinfo import NodeInfo
from swarmlet.manager.scheduler.spread import NodePasses, SpreadQueue
from swarmlet.models import Node, TaskSpec

LabelOf = Callable[[Node], str]


def _label_of(descriptor: str) -> LabelOf | None:
    """How to read the descriptor's value from a node, or None for one SwarmKit ignores."""
    for prefix in (NODE_LABEL_PREFIX, ENGINE_LABEL_PREFIX):
        if len(descriptor) > len(prefix) and descriptor[: len(prefix)].lower() == prefix:
            name = descriptor[len(prefix) :]
            if prefix == NODE_LABEL_PREFIX:
                return lambda node: node.spec.labels.get(name, "")
            return lambda node: node.description.engine.labels.get(name, "")
    return None


def spread_labels(spec: TaskSpec) -> tuple[LabelOf, ...]:
    """The labels the task's preferences spread over, outermost first (none: plain spread)."""
    placement = spec.placement
    if placement is None or not placement.preferences:
        return ()
    found = []
    for preference in placement.preferences:
        descriptor = (preference.spread or {}).get("SpreadDescriptor", "")
        label_of = _label_of(descriptor)
        if label_of is not None:
            found.append(label_of)
    return tuple(found)


class _Branch:
    """One value of a preference's label: its nodes, split by the next preference (or, at
    the last level, a SpreadQueue of those that may take the group's tasks)."""

    __slots__ = ("children", "eligible", "heap", "queue", "tasks")

    def __init__(self) -> None:
        self.tasks = 0  # active tasks of the service on every node of the branch
        self.children: dict[str, _Branch] = {}
        self.eligible: list[NodeInfo] = []
        # Inner branches: the children by (tasks, rank); ranks are distinct, so a tuple never
        # compares the branches themselves.
        self.heap: list[tuple[int, int, _Branch]] = []
        self.queue: SpreadQueue | None = None


class PreferenceTree:
    """The candidate nodes of one group of identical tasks, spread by preferences.

    Takes and puts nodes like a ``SpreadQueue``, and is as short-lived: valid while the
    group is placed. Branches with equally many tasks are tried in an order shuffled by
    ``rng`` (seeded from the group), so that no label value is always first.
    """

    def __init__(
        self,
        service_id: str,
        labels: tuple[LabelOf, ...],
        nodes: Iterable[NodeInfo],
        eligible: Iterable[NodeInfo],
        rng: random.Random,
    ) -> None:
        may_take = set(eligible)
        self._root = _Branch()
        for node in nodes:
            tasks = node.tasks_of_service(service_id)
            branch = self._root
            branch.tasks += tasks
            for label_of in labels:
                value = label_of(node.node)
                child = branch.children.get(value)
                if child is None:
                    child = branch.children[value] = _Branch()
                child.tasks += tasks
                branch = child
            if node in may_take:
                branch.eligible.append(node)
        self._queue_of: dict[str, SpreadQueue] = {}
        self._build(self._root, service_id, rng)

    def _build(self, branch: _Branch, service_id: str, rng: random.Random) -> None:
        if not branch.children:
            branch.queue = SpreadQueue(service_id, branch.eligible)
            for node in branch.eligible:
                self._queue_of[node.id] = branch.queue
            return
        values = sorted(branch.children)
        rng.shuffle(values)
        for rank, value in enumerate(values):
            child = branch.children[value]
            self._build(child, service_id, rng)
            branch.heap.append((child.tasks, rank, child))
        heapq.heapify(branch.heap)

    def take(self, seed: int, passes: NodePasses | None = None) -> NodeInfo | None:
        """Remove and return a node of the branches with the fewest tasks, or None."""
        return self._take(self._root, seed, passes)

    def _take(self, branch: _Branch, seed: int, passes: NodePasses | None) -> NodeInfo | None:
        if branch.queue is not None:
            return branch.queue.take(seed, passes)
        heap = branch.heap
        while heap:
            tasks, rank, child = heap[0]
            node = self._take(child, seed, passes)
            if node is None:
                heapq.heappop(heap)  # no room left there: the other branches share its part
                continue
            heapq.heapreplace(heap, (tasks + 1, rank, child))
            return node
        return None

    def put(self, node: NodeInfo) -> None:
        """Put a node taken from this tree back, under its current load."""
        self._queue_of[node.id].put(node)
