"""The agent: the worker that runs this node's tasks, and its session to the managers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from swarmlet.agent.describe import describe_node
from swarmlet.agent.engine import EngineClient
from swarmlet.agent.network import NetworkAgent
from swarmlet.agent.session import Session
from swarmlet.agent.worker import Worker
from swarmlet.clock import Clock
from swarmlet.models import NodeDescription, Task
from swarmlet.protocol import StatusUpdate


class Agent:
    def __init__(
        self,
        *,
        engine: EngineClient,
        node_id: str,
        manager_addrs: Sequence[str],
        addr: str,
        hostname: str,
        clock: Clock,
        container_labels: Mapping[str, str],
    ) -> None:
        self._engine = engine
        self._hostname = hostname
        self.network = NetworkAgent(
            engine, host_addr=addr, node_id=node_id, clock=clock, sandbox_labels=container_labels
        )
        self.worker = Worker(
            engine,
            node_id,
            self._report,
            clock,
            container_labels=container_labels,
            networking=self.network,
        )
        self.session = Session(
            node_id=node_id,
            manager_addrs=manager_addrs,
            addr=addr,
            describe=self._describe,
            assign=self._assign,
            statuses=self.worker.statuses,
            clock=clock,
            network=self.network.apply,
        )

    async def _describe(self) -> NodeDescription:
        return await describe_node(self._engine, self._hostname)

    async def _assign(self, tasks: Sequence[Task]) -> None:
        await self.network.adopt(tasks)
        await self.worker.assign(tasks)

    async def _report(self, updates: list[StatusUpdate]) -> None:
        # The worker is built before the session it reports through.
        await self.session.report(updates)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.worker.run(), name="worker")
            group.create_task(self.session.run(), name="session")
            group.create_task(self.network.run(), name="network")
