"""The manager: the store's controllers and the dispatcher's port, run together.

Controllers never call each other; they meet in the store. Only the leader runs them, for as
long as its term lasts (``leadership``: with one manager, that is this one from start to end).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web

from swarmlet.clock import Clock
from swarmlet.manager import orchestrator
from swarmlet.manager.allocator import Allocator
from swarmlet.manager.ca import CertificateAuthority
from swarmlet.manager.ca.rotation import RootRotation
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.server import manager_app
from swarmlet.manager.events import swarm_events_for
from swarmlet.manager.leadership import Leadership, SoleManager, Term
from swarmlet.manager.scheduler.scheduler import Scheduler
from swarmlet.manager.store import Store
from swarmlet.pki import Credentials
from swarmlet.pki.tls import reloading_server_context

log = logging.getLogger(__name__)


class Manager:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        node_id: str,
        listen_addr: str,
        credentials: Credentials,
        api: web.Application | None = None,
        leadership: Leadership | None = None,
        routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self.store = store
        self._leadership = leadership or SoleManager(node_id)
        # The daemon's own routes on the port (a manager joining etcd).
        self._routes = routes
        # The Engine API for the requests the other managers forward, served on the port.
        self._api = api
        self._clock = clock
        self._node_id = node_id
        self._listen_addr = listen_addr
        # The manager's own node certificate is its server certificate.
        self._credentials = credentials

    async def run(self) -> None:
        dispatcher = Dispatcher(self.store, self._clock, self._node_id)
        authority = CertificateAuthority(self.store, self._clock)
        app = manager_app(dispatcher, authority, self._api, routes=self._routes)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        host, _, port = self._listen_addr.rpartition(":")
        # Read again for every handshake: a renewed certificate or a new root needs no restart.
        tls = reloading_server_context(self._credentials)
        site = web.TCPSite(
            runner, host or "0.0.0.0", int(port), reuse_address=True, ssl_context=tls
        )
        await site.start()
        log.info("manager listening for agents on %s", self._listen_addr)
        try:
            async with asyncio.TaskGroup() as group:
                # Every manager keeps the swarm's events (they come from its store).
                events = swarm_events_for(self.store, self._clock)
                group.create_task(events.run(), name="swarm-events")
                group.create_task(
                    self._leadership.run(lambda term: self._lead(term, dispatcher)),
                    name="leadership",
                )
        finally:
            await runner.cleanup()

    async def _lead(self, term: Term, dispatcher: Dispatcher) -> None:
        """The leader's work, cancelled when its term ends: the dispatcher's loops and every
        controller, all on the one controller runtime."""
        log.info("manager %s leads: starting the controllers", term.node_id)
        # Their writes land only while the term lasts (on etcd; docs/store.md, "Fencing").
        store = self.store.fenced(term)
        async with asyncio.TaskGroup() as group:
            group.create_task(dispatcher.run(store), name="dispatcher")
            group.create_task(Allocator(store, self._clock).run(), name="allocator")
            group.create_task(Scheduler(store, self._clock).run(), name="scheduler")
            rotation = RootRotation(store, self._clock)
            group.create_task(rotation.run(), name="root-rotation")
            controllers = [*orchestrator.controllers(store, self._clock)]
            if self.store.shared:
                # Only a manager on etcd loads its client (gRPC: 22 MiB).
                from swarmlet.manager.etcd.compaction import compaction_for

                controllers += compaction_for(self.store, self._clock)
            for controller in controllers:
                group.create_task(controller.run(), name=type(controller).__name__)
