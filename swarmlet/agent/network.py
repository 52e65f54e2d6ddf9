"""The host's side of the overlay networks: programs the kernel from the manager's network
state, answers DNS for the local tasks, and is the engine's network plugin, through which each
task's container is plumbed before its process starts (``TaskNetworking``).

Every change of the network state is applied in one pass, in order: the host's own settings;
bridges, VXLAN devices and forwarding entries; the routing mesh's rules; the engine's copies
of the networks; the DNS's view and listening addresses; the VIP rules inside every local
task's namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from swarmlet.agent.engine import EngineClient
from swarmlet.agent.executor import container_name
from swarmlet.agent.local_networks import LocalNetworks
from swarmlet.agent.networking import ContainerNetworking
from swarmlet.clock import Clock
from swarmlet.errors import EngineError, InvalidSpec, NotFound, SwarmletError, Unavailable
from swarmlet.models import Task, TaskState
from swarmlet.net import nft
from swarmlet.net.dns import EmbeddedDNS
from swarmlet.net.driver import Endpoint, Joined, container_side, host_side
from swarmlet.net.endpoint import Veth, delete_veths, make_veth
from swarmlet.net.host import HostChanges
from swarmlet.net.mesh import mesh_for
from swarmlet.net.names import bridge_name, ip_of
from swarmlet.net.netlink import program_host
from swarmlet.net.vip import vip_ruleset
from swarmlet.protocol import NetworkState, NetworkView, ServiceEntry

log = logging.getLogger(__name__)

# How long a task may wait for the manager to give this host its address on the task's
# networks (the allocator does it as soon as the network is in use), and for the engine's
# copies of them.
ATTACH_WAIT = 60.0


@dataclass(frozen=True)
class _Expected:
    """An address of a local task: which task, and which of its networks (0: its first)."""

    task_id: str
    index: int


class NetworkAgent:
    def __init__(
        self,
        engine: EngineClient,
        *,
        host_addr: str,
        clock: Clock,
        host: HostChanges,
        plugin: str,
        network_suffix: str = "",
    ) -> None:
        self._engine = engine
        self._host_addr = host_addr
        self._clock = clock
        self._host = host
        self.local_networks = LocalNetworks(engine, plugin, network_suffix)
        self._state = NetworkState()
        self._applied = asyncio.Condition()
        self._programming = asyncio.Lock()
        self._dns = EmbeddedDNS()
        # The local tasks on networks, and each one's namespace once its container joined
        # (the engine's SandboxKey), where its VIP rules live.
        self._tasks: dict[str, Task] = {}
        self._netns: dict[str, str] = {}
        self._expected: dict[str, _Expected] = {}

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
            await self.local_networks.sync(state.networks)
            self._update_dns()
            await self._listen()
            for task_id, netns in list(self._netns.items()):
                await self._program_vips(self._tasks[task_id], netns)
        async with self._applied:
            self._applied.notify_all()

    async def adopt(self, tasks: Sequence[Task]) -> None:
        """Called with every assignment set: learn the namespaces of local tasks an earlier
        agent attached (after a restart), so their VIP rules and DNS scope follow changes
        again."""
        for task in tasks:
            if (
                task.id in self._netns
                or not task.networks_attachments
                or not TaskState.STARTING <= task.state <= TaskState.RUNNING
            ):
                continue
            try:
                info = await self._engine.inspect_container(container_name(task))
            except NotFound:
                continue
            if info.running and info.sandbox_key:
                self._remember(task)
                self._netns[task.id] = info.sandbox_key
        self._update_dns()

    # TaskNetworking

    async def attach(self, task: Task) -> ContainerNetworking:
        configs = await self._wait_for_networks(task)
        self._remember(task)
        (first, first_config), *_ = configs
        gateway = self._host_address(task.networks_attachments[0].network.id)
        return ContainerNetworking(
            host_config={"NetworkMode": first, "Dns": [gateway]},
            networking_config={"EndpointsConfig": {first: first_config}},
        )

    async def connect(self, task: Task, container_id: str) -> None:
        configs = await self._wait_for_networks(task)
        for network, config in configs[1:]:
            try:
                await self._engine.connect_network(network, container_id, config)
            except EngineError as exc:
                # An earlier attempt's container, connected already.
                if "already exists" not in exc.message:
                    raise

    async def detach(self, task: Task) -> None:
        self._forget(task.id)
        self._update_dns()

    # DriverHost: what the engine's calls to the plugin need

    async def swarm_network(self, engine_network_id: str) -> str:
        return await self.local_networks.swarm_network(engine_network_id)

    async def make_endpoint(self, endpoint: Endpoint, engine_pid: int) -> None:
        view = self._view(endpoint.network_id)
        if engine_pid <= 0:
            raise Unavailable("the engine's process is unknown: cannot make the interface")
        veth = Veth(
            host_name=host_side(endpoint.id),
            bridge=bridge_name(view.vni),
            name=container_side(endpoint.id),
            mac=endpoint.mac,
        )
        await make_veth(veth, engine_pid)

    async def join(self, endpoint: Endpoint, sandbox_key: str) -> Joined:
        expected = self._expected.get(endpoint.ip)
        if expected is None or expected.task_id not in self._tasks:
            # A container that is not a task of this host: it goes out through the host too.
            return Joined(gateway=self._host_address(endpoint.network_id))
        task = self._tasks[expected.task_id]
        if expected.index != 0:
            return Joined(gateway=None)
        # Before the task's process starts: its VIPs answer from its first packet on.
        self._netns[task.id] = sandbox_key
        await self._program_vips(task, sandbox_key)
        return Joined(gateway=self._host_address(endpoint.network_id))

    async def leave(self, endpoint_id: str) -> None:
        await delete_veths([host_side(endpoint_id)])

    async def remove_endpoint(self, endpoint_id: str) -> None:
        await delete_veths([host_side(endpoint_id)])

    async def request_address(self, network_id: str, address: str) -> str:
        if not address:
            view = self._view(network_id)
            raise InvalidSpec(
                f"network {view.name} is a swarm network: its addresses come from the manager"
            )
        return address

    async def release_address(self, network_id: str, address: str) -> None:
        # A task's address is the manager's to release, with the task.
        return

    # Inside

    def _remember(self, task: Task) -> None:
        self._tasks[task.id] = task
        for index, attachment in enumerate(task.networks_attachments):
            for address in attachment.addresses:
                self._expected[ip_of(address)] = _Expected(task.id, index)

    def _forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        self._netns.pop(task_id, None)
        for ip in [ip for ip, expected in self._expected.items() if expected.task_id == task_id]:
            del self._expected[ip]

    def _view(self, network_id: str) -> NetworkView:
        for view in self._state.networks:
            if view.id == network_id:
                return view
        raise Unavailable(f"this host is not on network {network_id} yet")

    def _host_address(self, network_id: str) -> str:
        address = self._view(network_id).local_address
        if not address:
            raise Unavailable(f"this host has no address on network {network_id} yet")
        return ip_of(address)

    async def _wait_for_networks(self, task: Task) -> list[tuple[str, dict[str, object]]]:
        """Each of the task's networks as (the engine's copy, the endpoint's config), once
        this host has its address on each and the engine its copy."""

        def ready() -> list[tuple[str, dict[str, object]]]:
            configs: list[tuple[str, dict[str, object]]] = []
            for attachment in task.networks_attachments:
                engine_id = self.local_networks.engine_id(attachment.network.id)
                view = next(
                    (v for v in self._state.networks if v.id == attachment.network.id), None
                )
                if engine_id is None or view is None or not view.local_address:
                    return []
                if not attachment.addresses:
                    raise InvalidSpec(f"task {task.id} has no address on {view.name}")
                ip = ip_of(attachment.addresses[0])
                configs.append((engine_id, {"IPAMConfig": {"IPv4Address": ip}}))
            return configs

        async with self._applied:
            try:
                async with asyncio.timeout(ATTACH_WAIT):
                    return await self._applied.wait_for(ready)
            except TimeoutError:
                raise Unavailable("this host is not on the task's networks yet") from None

    def _services_for(self, task: Task) -> list[ServiceEntry]:
        networks = {attachment.network.id for attachment in task.networks_attachments}
        return [
            service
            for view in self._state.networks
            if view.id in networks and not view.ingress
            for service in view.services
        ]

    async def _program_vips(self, task: Task, netns: str) -> None:
        try:
            await nft.apply_in_netns_path(netns, vip_ruleset(self._services_for(task)))
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
        addresses = [
            ip_of(view.local_address) for view in self._state.networks if view.local_address
        ]
        try:
            await self._dns.listen_on(addresses)
        except Unavailable as exc:
            log.warning("embedded DNS: %s", exc.message)
