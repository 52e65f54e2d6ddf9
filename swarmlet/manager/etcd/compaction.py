"""The leader compacts etcd's history, so that the keys' past versions do not fill etcd.

etcd keeps every revision of every key until it is compacted; a swarm writes each task
several times over its life, and a scheduler's pass of thousands of tasks is one revision of
megabytes. The rule (``compaction_target``): every ``INTERVAL_S`` (5 minutes, as
kube-apiserver's compactor) the leader notes etcd's revision, and compacts to the revision
it noted at the pass before, or further, to keep no more than ``KEEP_REVISIONS`` (10,000)
revisions. So the history always reaches back at least to the previous pass (a watch
that is up to 5 minutes behind still resumes), unless more than 10,000 revisions were
written since: a watch that far behind is told ``Compacted`` and its store loads again
(``Store``: the differences come to its watchers as one revision's events).

A new leader starts without a noted revision: its first compaction is one interval after
its first pass. A compaction etcd finds already done (by an earlier leader) is not an error;
one that fails (etcd unreachable) is tried again at the next pass, and never ends the term.
Compaction is logical only: etcd frees the space for new writes, and does not give it back
to the file system without a defragmentation (not done here).
"""

from __future__ import annotations

import logging

from swarmlet.clock import Clock
from swarmlet.errors import Unavailable
from swarmlet.manager.controller import Controller
from swarmlet.manager.store import Event, Store
from swarmlet.manager.store.etcd import EtcdBackend

log = logging.getLogger(__name__)

INTERVAL_S = 300.0
KEEP_REVISIONS = 10_000


def compaction_target(previous: int | None, current: int, compacted: int, keep: int) -> int | None:
    """The revision to compact to now, or None: ``previous``, the revision noted at the pass
    before (None: none yet), or ``current - keep`` when that is newer; never what is
    already ``compacted``, nor the current revision itself (etcd keeps it in any case)."""
    if previous is None:
        return None
    target = min(max(previous, current - keep), current)
    return target if target > compacted else None


class Compaction(Controller):
    """Compacts the etcd cluster behind ``backend`` every ``interval`` seconds, on the
    injected clock, for as long as this manager leads."""

    follows_store = False

    def __init__(
        self,
        store: Store,
        clock: Clock,
        backend: EtcdBackend,
        *,
        interval: float = INTERVAL_S,
        keep: int = KEEP_REVISIONS,
    ) -> None:
        super().__init__(store, clock)
        self._backend = backend
        self._interval = interval
        self._keep = keep
        self._due = clock.monotonic() + interval
        # The revision noted at the last pass (None: no pass yet), and the one this leader
        # last compacted to (etcd's own may be newer).
        self.noted: int | None = None
        self.compacted = 0

    def start(self) -> None:
        pass

    def mark(self, event: Event) -> None:
        pass

    def timeout(self) -> float | None:
        return max(0.0, self._due - self._clock.monotonic())

    async def act(self) -> None:
        if self._clock.monotonic() < self._due:
            return
        self._due = self._clock.monotonic() + self._interval
        try:
            current = await self._backend.current_revision()
            target = compaction_target(self.noted, current, self.compacted, self._keep)
            self.noted = current
            if target is not None:
                await self._backend.compact(target)
                self.compacted = target
                log.info("etcd: compacted the history before revision %d", target)
        except Unavailable as exc:
            log.warning("etcd: compaction failed (%s); again in %.0f s", exc, self._interval)


def compaction_for(store: Store, clock: Clock) -> list[Controller]:
    """The compaction a leader runs for its store: one for a store on etcd, none for a
    store of its own (SQLite, memory), which keeps no history."""
    backend = store.backend
    return [Compaction(store, clock, backend)] if isinstance(backend, EtcdBackend) else []
