"""The scheduler's control loop: PENDING tasks get a node (ASSIGNED) or an explanation.

A controller (``swarmlet.manager.controller``): the event handler only notes which tasks wait
and whether anything that could change a decision happened; once per batch of events, one
pass decides (``placement.schedule``, pure) and writes every change in one transaction.
"""

from __future__ import annotations

import logging

from swarmlet.clock import Clock
from swarmlet.errors import NotFound, VersionConflict
from swarmlet.manager.controller import Controller
from swarmlet.manager.scheduler.pipeline import DEFAULT_PIPELINE, Pipeline
from swarmlet.manager.scheduler.placement import Decision, schedule
from swarmlet.manager.store import Action, Event, Op, Store
from swarmlet.models import Node, Task, TaskState, TaskStatus

log = logging.getLogger(__name__)

# Swarm's status messages.
ASSIGNED_MESSAGE = "scheduler assigned task to node"
CONFIRMED_MESSAGE = "scheduler confirmed task can run on preassigned node"
PENDING_MESSAGE = "pending task scheduling"


# Sets of states, because set lookups are cheaper than TaskState's comparisons: a pass reads
# the state of every waiting task and of every task on a node.
# Desired states of a task meant to run: up to RUNNING, or COMPLETE for a job's (SwarmKit's
# scheduler takes tasks whose desired state is at most COMPLETED).
_UP_TO_RUNNING = frozenset(state for state in TaskState if state <= TaskState.COMPLETE)
_NOT_YET_ASSIGNED = frozenset(state for state in TaskState if state < TaskState.ASSIGNED)


def waits_for_node(task: Task) -> bool:
    """A task the scheduler must place (or, with a preset node, confirm). An attachment never
    is: its node is the one that asked for it, and no worker runs it."""
    return (
        task.status.state == TaskState.PENDING
        and task.desired_state in _UP_TO_RUNNING
        and not task.is_attachment
    )


def plan_updates(tasks: dict[str, Task], decisions: list[Decision], clock: Clock) -> list[Op]:
    """The writes that carry out the decisions; an unchanged explanation is not written again."""
    now = clock.now()
    # Statuses are immutable: every task placed in one pass can share one.
    assigned = TaskStatus(state=TaskState.ASSIGNED, message=ASSIGNED_MESSAGE, timestamp=now)
    confirmed = TaskStatus(state=TaskState.ASSIGNED, message=CONFIRMED_MESSAGE, timestamp=now)
    ops: list[Op] = []
    for decision in decisions:
        task = tasks[decision.task_id]
        if decision.node_id is not None:
            status = confirmed if task.node_id else assigned
            if decision.generic is None:
                placed = task.replace(node_id=decision.node_id, status=status)
            else:
                placed = task.replace(
                    node_id=decision.node_id,
                    status=status,
                    assigned_generic_resources=decision.generic,
                )
            ops.append(Op.update(placed))
        elif task.status.err != decision.error or task.status.message != PENDING_MESSAGE:
            status = task.status.replace(err=decision.error, message=PENDING_MESSAGE, timestamp=now)
            ops.append(Op.update(task.replace(status=status)))
    return ops


class Scheduler(Controller):
    """Places every PENDING task that is meant to run (desired state up to RUNNING).

    Placed: ``NodeID`` set and ASSIGNED. Unplaced: still PENDING, ``Status.Err`` saying why
    (written only when the reason changes). Waiting tasks are decided again whenever a node
    changes or a task ends or goes away.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        pipeline: Pipeline = DEFAULT_PIPELINE,
        debounce: float = 0.0,
    ) -> None:
        super().__init__(store, clock)
        self._pipeline = pipeline
        # Wait after a batch of events for more to arrive, so that a burst of commits is
        # decided in one pass (0: decide at once).
        self.debounce = debounce
        # IDs of the tasks waiting for a node, in the order they arrived.
        self._waiting: dict[str, None] = {}
        self._dirty = False

    def start(self) -> None:
        for task in self._store.all(Task):
            self._note_task(task)
        self._dirty = True

    # Event handlers: they only take note.

    def mark(self, event: Event) -> None:
        obj = event.obj
        if isinstance(obj, Node):
            # Joined, ready, down, drained, relabelled: any of it may change a decision.
            self._dirty = True
        elif isinstance(obj, Task):
            if event.action is Action.DELETE:
                self._waiting.pop(obj.id, None)
                self._dirty = True  # its node may have room again
            else:
                self._note_task(obj)

    def _note_task(self, task: Task) -> None:
        if waits_for_node(task):
            self._waiting[task.id] = None
            self._dirty = True
            return
        self._waiting.pop(task.id, None)
        if task.state.is_terminal:
            self._dirty = True  # it ended: its node may have room again

    # The pass: decide, then write once.

    async def act(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        tasks: dict[str, Task] = {}
        for task_id in list(self._waiting):
            task = self._store.find(Task, task_id)
            if task is None or not waits_for_node(task):
                del self._waiting[task_id]
            else:
                tasks[task_id] = task
        if not tasks:
            return
        nodes = self._store.all(Node)
        placed = [
            task
            for node in nodes
            for task in self._store.tasks_of_node(node.id)
            if task.status.state not in _NOT_YET_ASSIGNED and not task.is_attachment
        ]
        decisions = schedule(list(tasks.values()), nodes, placed, self._pipeline)
        ops = plan_updates(tasks, decisions, self._clock)
        if not ops:
            return
        try:
            await self.write_ops(ops)
        except (VersionConflict, NotFound) as exc:
            # A task changed or went away under the pass; its event is on the way and the
            # next pass decides again from the store as it is then.
            log.info("scheduler: commit failed, deciding again on the next pass: %s", exc)
            self._dirty = True
            return
        placed_count = sum(1 for decision in decisions if decision.placed)
        log.debug("scheduler: %d placed, %d waiting", placed_count, len(decisions) - placed_count)
