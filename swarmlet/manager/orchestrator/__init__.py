"""The orchestrators: controllers that turn services into tasks in the store.

- ``replicated.reconcile_replicated`` and ``global_.reconcile_global``: the pure decisions for
  one service (slots or nodes, failover, restarts, rolling update), each returning a ``Plan``.
- ``restart`` (the restart supervisor) and ``update`` (the rolling updater): the steps both
  modes share.
- ``reaper``: which tasks to delete (history limit, REMOVE, deleted services).
- ``jobs``: the decisions for replicated and global jobs (tasks run to completion).
- ``ReplicatedOrchestrator``, ``GlobalOrchestrator``, ``JobOrchestrator`` and ``TaskReaper``:
  the control loops, each built from the store and a clock with one ``async def run()``.
"""

from __future__ import annotations

from swarmlet.clock import Clock
from swarmlet.manager.controller import Controller
from swarmlet.manager.orchestrator.global_ import reconcile_global
from swarmlet.manager.orchestrator.jobs import reconcile_global_job, reconcile_replicated_job
from swarmlet.manager.orchestrator.orchestrator import (
    GlobalOrchestrator,
    JobOrchestrator,
    ReplicatedOrchestrator,
    ServiceOrchestrator,
)
from swarmlet.manager.orchestrator.plan import Memory, Now, Plan
from swarmlet.manager.orchestrator.reaper import TaskReaper, reap
from swarmlet.manager.orchestrator.replicated import reconcile_replicated
from swarmlet.manager.store import Store


def controllers(store: Store, clock: Clock) -> list[Controller]:
    """Every orchestrator controller, for the daemon to run in its TaskGroup."""
    return [
        ReplicatedOrchestrator(store, clock),
        GlobalOrchestrator(store, clock),
        JobOrchestrator(store, clock),
        TaskReaper(store, clock),
    ]


__all__ = [
    "GlobalOrchestrator",
    "JobOrchestrator",
    "Memory",
    "Now",
    "Plan",
    "ReplicatedOrchestrator",
    "ServiceOrchestrator",
    "TaskReaper",
    "controllers",
    "reap",
    "reconcile_global",
    "reconcile_global_job",
    "reconcile_replicated",
    "reconcile_replicated_job",
]
