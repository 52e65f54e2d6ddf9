"""The scheduler: PENDING tasks are given a node (ASSIGNED), or told why none can take them.

- ``constraints``: placement constraints, parsed (the API validates specs with it) and matched.
- ``filters`` and ``pipeline``: the declared pipeline of filters (ready and active, resources,
  constraints, max replicas per node), each explaining its rejections in Swarm's words.
- ``placement.schedule``: the pure decision — tasks grouped by service and spec and placed
  group by group: filters once per group, then spread over the least loaded nodes (and, with
  placement preferences, over the values of node labels first), ties broken by the task's
  seed, a hash of its ID.
- ``scheduler.Scheduler``: the control loop that feeds ``schedule`` from the store and writes
  its decisions back in one commit per pass.
"""

from swarmlet.manager.scheduler.constraints import (
    Constraint,
    Operator,
    constraints_match,
    parse_constraint,
    parse_constraints,
)
from swarmlet.manager.scheduler.filters import (
    ConstraintFilter,
    Filter,
    MaxReplicasFilter,
    ReadyFilter,
    ResourceFilter,
)
from swarmlet.manager.scheduler.nodeinfo import NodeInfo
from swarmlet.manager.scheduler.pipeline import (
    DEFAULT_PIPELINE,
    Pipeline,
    TaskChecks,
    explain_failures,
    no_suitable_node,
)
from swarmlet.manager.scheduler.placement import Decision, schedule
from swarmlet.manager.scheduler.scheduler import Scheduler

__all__ = [
    "DEFAULT_PIPELINE",
    "Constraint",
    "ConstraintFilter",
    "Decision",
    "Filter",
    "MaxReplicasFilter",
    "NodeInfo",
    "Operator",
    "Pipeline",
    "ReadyFilter",
    "ResourceFilter",
    "Scheduler",
    "TaskChecks",
    "constraints_match",
    "explain_failures",
    "no_suitable_node",
    "parse_constraint",
    "parse_constraints",
    "schedule",
]
