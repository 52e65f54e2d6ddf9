"""The dispatcher's status writer: agents' status reports, written in one transaction per
batch.

With a thousand agents each reporting every step of its tasks, a commit per report was a
commit (and a wake-up of every controller) per millisecond; reports received within
``STATUS_BATCH_S`` of each other are written together, as SwarmKit's dispatcher does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.manager.controller import Controller
from swarmlet.manager.dispatcher import decide
from swarmlet.manager.store import Commit, Event, Op, Store, Tx
from swarmlet.models import Task
from swarmlet.protocol import StatusUpdate

log = logging.getLogger(__name__)

# Seconds agents' status reports wait to be written together (on the injected clock).
STATUS_BATCH_S = 0.1

# One agent's report: its node, and the updates it sent.
Report = tuple[str, Sequence[StatusUpdate]]


class StatusWriter(Controller):
    """Keeps the reports received and writes them a batch at a time: a report pokes the
    loop, which waits ``STATUS_BATCH_S`` (its debounce) for more, then writes every report
    waiting in one commit. One commit at a time, in the order the reports came: reports that
    come during a commit make the next batch. A batch whose commit fails is logged and
    dropped (the agent reports the task again with its next change). When the loop ends
    (cancelled), the reports already received are written before it returns.

    Its commits are what the assignment pusher passes over (a node knows what it reported):
    it follows no store, and shares its own commits."""

    debounce = STATUS_BATCH_S
    follows_store = False
    shares_own_commits = True

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._reports: list[Report] = []

    def report(self, node_id: str, updates: Sequence[StatusUpdate]) -> None:
        """Keep an agent's report for the next batch."""
        self._reports.append((node_id, updates))
        self.poke()

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            # The reports already received are not lost. (The store finishes a commit its
            # caller stops waiting for: a cancellation leaves none half done.)
            await self.flush()

    def start(self) -> None:
        """Nothing to look at: the reports come from the sessions."""

    def mark(self, event: Event) -> None:
        """Never called: the writer follows no store."""

    async def act(self) -> None:
        await self.flush()

    async def flush(self) -> None:
        """Write every report waiting, in one transaction, now."""
        reports, self._reports = self._reports, []
        if not reports:
            return
        try:
            await self.write_reports(reports)
        except SwarmletError as exc:  # the store closed under a stopping manager
            log.info("dispatcher: %d status reports not written: %s", len(reports), exc)
        except asyncio.CancelledError:
            # Written again when the loop ends; a report applied already is then dropped as
            # unchanged.
            self._reports[:0] = reports
            raise

    async def write_reports(self, reports: Sequence[Report]) -> Commit[None]:
        """Write the accepted updates in one transaction; stale or backward ones are
        dropped (``decide.accept_status``)."""

        def accept(tx: Tx) -> None:
            changed: dict[str, Task] = {}
            for node_id, updates in reports:
                for update in updates:
                    task = changed.get(update.task_id) or tx.find(Task, update.task_id)
                    if task is None:
                        continue
                    accepted = decide.accept_status(task, node_id, update.status)
                    if accepted is not None:
                        changed[task.id] = accepted
            tx.write(Op.update(task) for task in changed.values())

        return await self.write(accept)
