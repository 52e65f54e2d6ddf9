"""The manager: the store's controllers and the dispatcher's port, run together.

Controllers never call each other; they meet in the store. Only the leader runs them (with
one manager, that is this one).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from swarmlet.clock import Clock
from swarmlet.manager import orchestrator
from swarmlet.manager.allocator import Allocator
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.server import session_app
from swarmlet.manager.scheduler.scheduler import Scheduler
from swarmlet.manager.store import Store

log = logging.getLogger(__name__)


class Manager:
    def __init__(self, store: Store, clock: Clock, node_id: str, listen_addr: str) -> None:
        self.store = store
        self._clock = clock
        self._node_id = node_id
        self._listen_addr = listen_addr

    async def run(self) -> None:
        dispatcher = Dispatcher(self.store, self._clock, self._node_id)
        runner = web.AppRunner(session_app(dispatcher), handle_signals=False)
        await runner.setup()
        host, _, port = self._listen_addr.rpartition(":")
        site = web.TCPSite(runner, host or "0.0.0.0", int(port), reuse_address=True)
        await site.start()
        log.info("manager listening for agents on %s", self._listen_addr)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(dispatcher.run(), name="dispatcher")
                group.create_task(Allocator(self.store, self._clock).run(), name="allocator")
                group.create_task(Scheduler(self.store, self._clock).run(), name="scheduler")
                for controller in orchestrator.controllers(self.store, self._clock):
                    group.create_task(controller.run(), name=type(controller).__name__)
        finally:
            await runner.cleanup()
