"""The host's side of the overlay networks: programs the kernel from the manager's network
state, answers DNS for the local tasks, and prepares each task's namespace before its process
starts (``TaskNetworking``).

Every change of the network state is applied in one pass, in order: bridges, VXLAN devices and
forwarding entries; the routing mesh's rules; the DNS's view and listening addresses; the VIP
rules inside every local task's namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from swarmlet.agent.engine import EngineClient
from swarmlet.clock import Clock
from swarmlet.errors import NotFound, SwarmletError, Unavailable
from swarmlet.models import Task, TaskState
from swarmlet.net import nft
from swarmlet.net.dns import EmbeddedDNS
from swarmlet.net.host import HostChanges
from swarmlet.net.mesh import mesh_for
from swarmlet.net.names import ip_of
from swarmlet.net.netlink import program_host
from swarmlet.net.sandbox import (
    attach_task,
    detach_task,
    host_address_on_first_network,
    remove_sandbox,
    sandbox_name,
    start_sandbox,
)
from swarmlet.net.vip import vip_ruleset
from swarmlet.protocol import NetworkState, ServiceEntry

log = logging.getLogger(__name__)

SANDBOX_TASK_LABEL = "com.swarmlet.task.id"
NODE_LABEL = "com.swarmlet.node.id"
# How long a task may wait for the manager to give this host its address on the task's
# networks (the allocator does it as soon as the network is in use).
ATTACH_WAIT = 60.0


class NetworkAgent:
    def __init__(
        self,
        engine: EngineClient,
        *,
        host_addr: str,
        node_id: str,
        clock: Clock,
        sandbox_labels: Mapping[str, str],
        host: HostChanges,
    ) -> None:
        self._engine = engine
        self._host = host
        self._host_addr = host_addr
        self._clock = clock
        self._labels = {**sandbox_labels, NODE_LABEL: node_id}
        self._node_id = node_id
        self._state = NetworkState()
        self._applied = asyncio.Condition()
        self._programming = asyncio.Lock()
        self._dns = EmbeddedDNS()
        # The local tasks whose namespaces this agent holds: task → its sandbox's pid.
        self._tasks: dict[str, Task] = {}
        self._pids: dict[str, int] = {}

    async def run(self) -> None:
        try:
            await self._dns.serve([])
        finally:
            await self._dns.aclose()

    # The manager's view

    async def apply(self, state: NetworkState) -> None:
        async with self._programming:
            self._state = state
            # First, so that what the host had before the swarm is remembered before anything
            # changes it; each time, since a restarted dockerd may have put its rules first.
            await asyncio.to_thread(self._host.apply)
            await program_host(state.networks, self._host_addr)
            await nft.apply(mesh_for(state))
            self._update_dns()
            await self._listen()
            for task_id, pid in list(self._pids.items()):
                await self._program_vips(self._tasks[task_id], pid)
        async with self._applied:
            self._applied.notify_all()

    async def adopt(self, tasks: Sequence[Task]) -> None:
        """Called with every assignment set: learn the namespaces of local tasks an earlier
        agent attached (after a restart), so their VIP rules and DNS scope follow changes
        again; and remove the sandboxes of tasks no longer assigned."""
        await self._sweep({task.id for task in tasks})
        for task in tasks:
            if (
                task.id in self._pids
                or not task.networks_attachments
                or not TaskState.STARTING <= task.state <= TaskState.RUNNING
            ):
                continue
            try:
                info = await self._engine.inspect_container(sandbox_name(task))
            except NotFound:
                continue
            if info.running and info.pid > 0:
                self._tasks[task.id] = task
                self._pids[task.id] = info.pid
        self._update_dns()

    async def _sweep(self, assigned: set[str]) -> None:
        try:
            found = await self._engine.list_containers({NODE_LABEL: self._node_id})
        except SwarmletError as exc:
            log.warning("listing this node's sandboxes: %s", exc.message)
            return
        for summary in found:
            task_id = summary.labels.get(SANDBOX_TASK_LABEL)
            if task_id is not None and task_id not in assigned:
                try:
                    await self._engine.remove_container(summary.id, force=True)
                except SwarmletError as exc:
                    log.warning("removing sandbox %s: %s", summary.name, exc.message)

    # TaskNetworking

    async def attach(self, task: Task) -> dict[str, Any]:
        local = await self._wait_for_addresses(task)
        sandbox = await start_sandbox(
            self._engine,
            task,
            {**self._labels, SANDBOX_TASK_LABEL: task.id},
            nameserver=ip_of(host_address_on_first_network(task, local)),
        )
        await attach_task(task, sandbox.pid, local)
        self._tasks[task.id] = task
        self._pids[task.id] = sandbox.pid
        await self._program_vips(task, sandbox.pid)
        self._update_dns()
        return {"NetworkMode": f"container:{sandbox.id}"}

    async def detach(self, task: Task) -> None:
        self._tasks.pop(task.id, None)
        self._pids.pop(task.id, None)
        self._update_dns()
        await detach_task(task)
        await remove_sandbox(self._engine, task)

    # Inside

    def _local_addresses(self) -> dict[str, str]:
        return {view.id: view.local_address for view in self._state.networks if view.local_address}

    async def _wait_for_addresses(self, task: Task) -> dict[str, str]:
        wanted = {attachment.network.id for attachment in task.networks_attachments}

        def ready() -> bool:
            return wanted <= set(self._local_addresses())

        async with self._applied:
            try:
                async with asyncio.timeout(ATTACH_WAIT):
                    await self._applied.wait_for(ready)
            except TimeoutError:
                raise Unavailable("this host has no address on the task's networks yet") from None
        return self._local_addresses()

    def _services_for(self, task: Task) -> list[ServiceEntry]:
        networks = {attachment.network.id for attachment in task.networks_attachments}
        return [
            service
            for view in self._state.networks
            if view.id in networks and not view.ingress
            for service in view.services
        ]

    async def _program_vips(self, task: Task, pid: int) -> None:
        try:
            await nft.apply_in_netns(pid, vip_ruleset(self._services_for(task)))
        except SwarmletError as exc:
            # The task's namespace may be gone already (it ended); its detach follows.
            log.warning("VIP rules for task %s: %s", task.id, exc.message)

    def _update_dns(self) -> None:
        # A task is scoped to every network it is on, whichever of its addresses it asks from.
        scopes: dict[str, list[str]] = {}
        for task in self._tasks.values():
            networks = [attachment.network.id for attachment in task.networks_attachments]
            for attachment in task.networks_attachments:
                for address in attachment.addresses:
                    scopes[ip_of(address)] = networks
        self._dns.update(self._state.networks, scopes)

    async def _listen(self) -> None:
        addresses = [ip_of(address) for address in self._local_addresses().values()]
        try:
            await self._dns.listen_on(addresses)
        except Unavailable as exc:
            log.warning("embedded DNS: %s", exc.message)
