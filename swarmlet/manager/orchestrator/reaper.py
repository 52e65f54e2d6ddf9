"""The task reaper: deletes the tasks nobody needs to see any more.

- History: each instance (a slot; a node for a global service) keeps at most the cluster's
  ``TaskHistoryRetentionLimit`` tasks (5 without a cluster object; a negative limit keeps
  everything). The oldest ended, non-current tasks go first; the newest task of an instance
  with no current task stays, as it is what keeps a stopped slot in its place.
- Tasks marked REMOVE (scaled away, their node gone) go once they ended, never reached a node
  or their node is gone from the store.
- Tasks of a deleted service go under the same conditions.
- A job's tasks have no history limit: every task of every iteration stays (completed ones
  are the job's result) until it is marked REMOVE, as SwarmKit's reaper, which trims the
  history of replicated and global services only.
- Attachments (plain containers' tasks, no service) go when their node is removed from the
  swarm; until then they are their node's to delete.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable
from datetime import UTC, datetime

from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.manager.controller import Controller
from swarmlet.manager.orchestrator.plan import is_current
from swarmlet.manager.store import Action, Event, Op, Store
from swarmlet.models import Cluster, Node, Service, Task, TaskState

log = logging.getLogger(__name__)

DEFAULT_RETENTION_LIMIT = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _age(task: Task) -> tuple[datetime, int]:
    """Sort key, oldest first."""
    return (task.created_at or task.status.timestamp or _EPOCH, task.version.index)


def _is_over(task: Task, node_ids: Container[str]) -> bool:
    """Whether nothing of the task can still run: it ended, never reached a node, or its node
    is gone."""
    return (
        task.state.is_terminal
        or task.node_id is None
        or task.state < TaskState.ASSIGNED
        or task.node_id not in node_ids
    )


def reap(
    service: Service | None,
    tasks: Iterable[Task],
    node_ids: Container[str],
    retention_limit: int = DEFAULT_RETENTION_LIMIT,
) -> list[Task]:
    """The tasks of one service (None: it was deleted) to delete."""
    doomed: list[Task] = []
    kept: list[Task] = []
    for task in tasks:
        if task.is_attachment:
            if task.node_id not in node_ids:
                doomed.append(task)
            continue
        unwanted = service is None or task.desired_state >= TaskState.REMOVE
        (doomed if unwanted and _is_over(task, node_ids) else kept).append(task)
    if service is None or retention_limit < 0 or service.spec.mode.is_job:
        return doomed
    instances: dict[int | str | None, list[Task]] = {}
    for task in kept:
        key = task.node_id if service.is_global else task.slot
        instances.setdefault(key, []).append(task)
    for key, group in instances.items():
        excess = len(group) - retention_limit
        if key is None or excess <= 0:
            continue
        group.sort(key=_age)
        if not any(is_current(task) for task in group):
            group.pop()  # the newest task of a stopped instance stays
        history = [
            task
            for task in group
            if not is_current(task)
            and (task.state.is_terminal or task.state < TaskState.ASSIGNED)
            and task.desired_state < TaskState.REMOVE
        ]
        doomed.extend(history[:excess])
    return doomed


def _on_its_way(task: Task) -> bool:
    # A job's task (desired COMPLETE) on its way frees nothing either.
    return (
        task.desired_state in (TaskState.RUNNING, TaskState.COMPLETE)
        and not task.status.state.is_terminal
    )


class TaskReaper(Controller):
    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._dirty: set[str] = set()

    def start(self) -> None:
        self._dirty = {task.service_id for task in self._store.all(Task)}

    def mark(self, event: Event) -> None:
        obj = event.obj
        if isinstance(obj, Task) and event.action is not Action.DELETE:
            # A task that joins an instance may push an old one out of its history (CREATE);
            # one meant to run that moves towards running (an agent's report) frees nothing.
            if event.action is Action.CREATE or not _on_its_way(obj):
                self._dirty.add(obj.service_id)
        elif isinstance(obj, Service) and event.action is Action.DELETE:
            self._dirty.add(obj.id)
        elif isinstance(obj, Node) and event.action is Action.DELETE:
            self._dirty.update(task.service_id for task in self._store.tasks_of_node(obj.id))
        elif isinstance(obj, Cluster):
            self.start()

    async def act(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        cluster = self._store.cluster()
        limit = (
            cluster.spec.orchestration.task_history_retention_limit
            if cluster is not None
            else DEFAULT_RETENTION_LIMIT
        )
        node_ids = {node.id for node in self._store.all(Node)}
        doomed: list[Task] = []
        for service_id in sorted(dirty):
            service = self._store.find(Service, service_id)
            doomed += reap(service, self._store.tasks_of_service(service_id), node_ids, limit)
        if not doomed:
            return
        try:
            await self.write_ops([Op.delete(task) for task in doomed])
        except SwarmletError as exc:
            # Something changed under the pass; its event brings the services back.
            log.info("task reaper: commit failed, deciding again on the next pass: %s", exc)
            self._dirty |= dirty
        else:
            log.debug("task reaper: deleted %d tasks", len(doomed))
