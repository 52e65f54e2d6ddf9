"""The allocator's control loop: VIPs, published ports, task and node addresses.

A controller (``swarmlet.manager.controller``): the event handler only notes whether anything
that could change an allocation happened; once per batch of events one pass decides
(``decide.allocate``, pure) and writes every change in one transaction. A failed commit is
decided again on the next batch, from the store as it is then. Networks themselves (subnet,
VNI) are allocated by the API when they are created, so that errors come at once.
"""

from __future__ import annotations

import logging

from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.manager.allocator.decide import (
    ClusterState,
    allocate,
    is_released,
    waits_for_addresses,
)
from swarmlet.manager.controller import Controller
from swarmlet.manager.store import Action, Event, Store
from swarmlet.models import Network, Node, Service, Task

log = logging.getLogger(__name__)


class Allocator(Controller):
    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._dirty = False
        # NEW tasks the last pass had to leave waiting (a full subnet, a missing network).
        self._waiting: set[str] = set()

    def start(self) -> None:
        self._dirty = True

    # Event handlers: they only take note.

    def mark(self, event: Event) -> None:
        obj = event.obj
        if isinstance(obj, Network | Service | Node):
            self._dirty = True
        elif isinstance(obj, Task):
            if event.action is Action.DELETE or is_released(obj):
                # Addresses were freed: a task waiting for one may have it now.
                self._dirty = self._dirty or bool(self._waiting)
            elif waits_for_addresses(obj):
                self._dirty = True

    # The pass: decide, then write once.

    async def act(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        store = self._store
        state = ClusterState(
            networks=store.all(Network),
            services=store.all(Service),
            tasks=store.all(Task),
            nodes=store.all(Node),
        )
        allocation = allocate(state, self._clock.now())
        self._waiting = set(allocation.waiting)
        ops = allocation.ops()
        if not ops:
            return
        try:
            await self.write_ops(ops)
        except SwarmletError as exc:
            # Something changed under the pass; its event is on the way, and the next pass
            # decides again from the store as it is then.
            log.info("allocator: commit failed, deciding again on the next pass: %s", exc)
            self._dirty = True
            return
        log.debug(
            "allocator: %d services, %d tasks, %d nodes written; %d tasks waiting",
            len(allocation.services),
            len(allocation.tasks),
            len(allocation.nodes),
            len(allocation.waiting),
        )
