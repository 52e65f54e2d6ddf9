"""Spread: the next node for a task of a service is the least loaded one that still passes.

Least loaded means fewest active tasks of the service, then fewest active tasks overall; ties
are broken by a random generator seeded from the task's ID, so a placement can be replayed.

Nodes sit in buckets by that (service tasks, all tasks) load, with a heap of the loads, so
taking a node costs O(log n) instead of a scan over every node: scheduling thousands of tasks
over thousands of nodes stays fast.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable

from swarmlet.manager.scheduler.nodeinfo import NodeInfo
from swarmlet.manager.scheduler.pipeline import TaskChecks

Load = tuple[int, int]


class SpreadQueue:
    """The candidate nodes for one group of identical tasks of a service.

    Only valid while the group is placed: the loads are read when a node is put in, and
    nothing but the group's own placements may change its nodes meanwhile.
    """

    def __init__(self, service_id: str, nodes: Iterable[NodeInfo]) -> None:
        self._service_id = service_id
        self._buckets: dict[Load, list[NodeInfo]] = {}
        for node in nodes:
            load = (node.active_by_service.get(service_id, 0), node.active_tasks)
            bucket = self._buckets.get(load)
            if bucket is None:
                self._buckets[load] = [node]
            else:
                bucket.append(node)
        # Exactly the loads that have a bucket (empty buckets are dropped lazily).
        self._loads: list[Load] = list(self._buckets)
        heapq.heapify(self._loads)

    def _load(self, node: NodeInfo) -> Load:
        return node.tasks_of_service(self._service_id), node.active_tasks

    def put(self, node: NodeInfo) -> None:
        """Add a node (back) under its current load."""
        load = self._load(node)
        bucket = self._buckets.get(load)
        if bucket is None:
            self._buckets[load] = [node]
            heapq.heappush(self._loads, load)
        else:
            bucket.append(node)

    def _least_loaded(self) -> list[NodeInfo] | None:
        while self._loads:
            bucket = self._buckets[self._loads[0]]
            if bucket:
                return bucket
            del self._buckets[heapq.heappop(self._loads)]
        return None

    def take(self, rng: random.Random, checks: TaskChecks) -> NodeInfo | None:
        """Remove and return a least loaded node that passes the checks, or None.

        A node that fails is dropped for good: while one group is placed, a node's free
        resources only shrink and its task counts only grow, so it would fail again.
        """
        while (bucket := self._least_loaded()) is not None:
            index = rng.randrange(len(bucket))
            node = bucket[index]
            # Swap-remove: O(1), and the order left behind is still deterministic.
            bucket[index] = bucket[-1]
            bucket.pop()
            if checks.passes(node):
                return node
        return None
