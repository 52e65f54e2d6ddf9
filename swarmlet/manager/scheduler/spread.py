"""Spread: the next node for a task of a service is the least loaded one that still passes.

Least loaded means fewest active tasks of the service, then fewest active tasks overall; ties
are broken by the task's seed (``seed_of``, a hash of its ID), so a placement can be replayed.

Nodes sit in buckets by that (service tasks, all tasks) load, with a heap of the loads, so
taking a node costs O(log n) instead of a scan over every node: scheduling thousands of tasks
over thousands of nodes stays fast.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from hashlib import blake2b

from swarmlet.manager.scheduler.nodeinfo import NodeInfo

Load = tuple[int, int]
NodePasses = Callable[[NodeInfo], bool]


def seed_of(task_id: str) -> int:
    """The task's seed for breaking ties: 64 bits of a hash of its ID.

    The same in every process (unlike ``hash()``), and cheaper than seeding a
    ``random.Random`` per task, which a scheduler placing thousands of tasks would feel.
    """
    return int.from_bytes(blake2b(task_id.encode(), digest_size=8).digest(), "big")


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

    def put(self, node: NodeInfo) -> None:
        """Add a node (back) under its current load."""
        load = (node.active_by_service.get(self._service_id, 0), node.active_tasks)
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

    def take(self, seed: int, passes: NodePasses | None = None) -> NodeInfo | None:
        """Remove and return a least loaded node that passes (when given), or None.

        The first pick is the seed modulo the ties; should that node fail, the next picks
        come from a generator seeded with it. A node that fails is dropped for good: while one
        group is placed, a node's free resources only shrink and its task counts only grow,
        so it would fail again.
        """
        rng: random.Random | None = None
        while (bucket := self._least_loaded()) is not None:
            index = seed % len(bucket) if rng is None else rng.randrange(len(bucket))
            node = bucket[index]
            # Swap-remove: O(1), and the order left behind is still deterministic.
            bucket[index] = bucket[-1]
            bucket.pop()
            if passes is None or passes(node):
                return node
            if rng is None:
                rng = random.Random(seed)
        return None
