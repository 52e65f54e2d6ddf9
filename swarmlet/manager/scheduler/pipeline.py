"""The declared pipeline of filters, and how a rejection is explained (SwarmKit ``pipeline.go``).

A node is charged to the first filter that rejects it, in pipeline order; the explanation
lists each filter's message, the filter that rejected the most nodes first, joined by "; ".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarmlet.manager.scheduler.filters import (
    ConstraintFilter,
    Filter,
    HostPortFilter,
    MaxReplicasFilter,
    NodeCheck,
    ReadyFilter,
    ResourceFilter,
)
from swarmlet.manager.scheduler.nodeinfo import NodeInfo
from swarmlet.models import Task

NO_SUITABLE_NODE = "no suitable node"

# SwarmKit's order (its plugin, platform and volume filters come later here).
DEFAULT_FILTERS: tuple[Filter, ...] = (
    ReadyFilter(),  # always first: a node that cannot take tasks is explained as such
    ResourceFilter(),
    ConstraintFilter(),
    HostPortFilter(),
    MaxReplicasFilter(),
)


@dataclass(frozen=True, slots=True)
class TaskChecks:
    """The filters that apply to one task, bound to it, in pipeline order."""

    checks: tuple[tuple[Filter, NodeCheck], ...]

    def first_failure(self, node: NodeInfo) -> Filter | None:
        for filter_, check in self.checks:
            if not check(node):
                return filter_
        return None

    def passes(self, node: NodeInfo) -> bool:
        return all(check(node) for _, check in self.checks)

    def static(self) -> TaskChecks:
        """Only the checks whose verdict cannot change while tasks are placed."""
        return TaskChecks(tuple(entry for entry in self.checks if entry[0].static))

    def dynamic(self) -> TaskChecks:
        return TaskChecks(tuple(entry for entry in self.checks if not entry[0].static))

    def failures(self, nodes: Iterable[NodeInfo]) -> list[tuple[Filter, int]]:
        """How many of the nodes each filter rejected first, in pipeline order."""
        counts = dict.fromkeys((filter_ for filter_, _ in self.checks), 0)
        for node in nodes:
            failed = self.first_failure(node)
            if failed is not None:
                counts[failed] += 1
        return list(counts.items())

    def explain(self, nodes: Iterable[NodeInfo]) -> str:
        """Why the task fits none of the nodes, in Swarm's words ('' if no filter failed)."""
        return explain_failures(self.failures(nodes))


def explain_failures(failures: Sequence[tuple[Filter, int]]) -> str:
    """SwarmKit's Pipeline.Explain: most failures first, ties in pipeline order."""
    by_failures = sorted(failures, key=lambda entry: -entry[1])  # stable: keeps ties in order
    return "; ".join(filter_.explain(count) for filter_, count in by_failures if count > 0)


def no_suitable_node(explanation: str) -> str:
    """The error of a task that no node can take."""
    return f"{NO_SUITABLE_NODE} ({explanation})" if explanation else NO_SUITABLE_NODE


@dataclass(frozen=True, slots=True)
class Pipeline:
    filters: tuple[Filter, ...] = DEFAULT_FILTERS

    def checks_for(self, task: Task) -> TaskChecks:
        bound = ((filter_, filter_.check_for(task)) for filter_ in self.filters)
        return TaskChecks(tuple((filter_, check) for filter_, check in bound if check is not None))


DEFAULT_PIPELINE = Pipeline()
