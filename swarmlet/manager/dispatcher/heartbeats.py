"""The dispatcher's heartbeat checker: nodes whose grace ran out are marked Down.

Heartbeats are kept in memory by the dispatcher (``last_seen``); the checker wakes when the
first grace runs out (a little after, so that it has), not on a fixed tick: a tick would add
up to its length to the time a node shows Down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from swarmlet.clock import Clock
from swarmlet.manager.controller import Controller
from swarmlet.manager.dispatcher import decide
from swarmlet.manager.store import Event, Store, Tx
from swarmlet.models import SECOND_NS, Node, NodeState, NodeStatus

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_PERIOD = 5 * SECOND_NS
# Seconds past a grace's end the checker wakes, so that the grace has run out.
LATE_S = 0.01


def heartbeat_period(store: Store) -> float:
    """The cluster's heartbeat period, in seconds."""
    cluster = store.cluster()
    period = cluster.spec.dispatcher.heartbeat_period if cluster else 0
    # Zero is "the default", as in SwarmKit (the API refuses a negative period).
    return (period if period > 0 else DEFAULT_HEARTBEAT_PERIOD) / SECOND_NS


class HeartbeatChecker(Controller):
    """Marks Down, in one transaction, the nodes silent for longer than their grace. A timer
    only: it follows no store (a node added meanwhile is looked at within a period)."""

    follows_store = False

    def __init__(self, store: Store, clock: Clock, last_seen: Mapping[str, float]) -> None:
        super().__init__(store, clock)
        # When each node was last heard from (the clock's monotonic time), as the dispatcher
        # keeps it.
        self._last_seen = last_seen

    def start(self) -> None:
        """Nothing to mark: every pass looks at every node."""

    def mark(self, event: Event) -> None:
        """Never called: the checker follows no store."""

    def timeout(self) -> float:
        """Until the first grace runs out, and at most a period (the period may change)."""
        period = heartbeat_period(self._store)
        wait = decide.next_expiry(
            self._store.all(Node), self._last_seen, self._clock.monotonic(), period
        )
        return min(wait, period) + LATE_S

    async def act(self) -> None:
        now, period = self._clock.monotonic(), heartbeat_period(self._store)

        def mark_down(tx: Tx) -> list[Node]:
            down = decide.expired_nodes(tx.all(Node), self._last_seen, now, period)
            status = NodeStatus(state=NodeState.DOWN, message="heartbeat failure")
            for node in down:
                tx.update(node.replace(status=status.replace(addr=node.status.addr)))
            return down

        down = (await self.write(mark_down)).value
        if down:
            log.info("nodes down: %s", ", ".join(node.id for node in down))
