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
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

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
from swarmlet.net.host_ports import (
    HostPort,
    free_port,
    host_ports_ruleset,
    remove_host_ports_ruleset,
)
from swarmlet.net.mesh import mesh_for
from swarmlet.net.names import bridge_name, ip_of
from swarmlet.net.netlink import program_host
from swarmlet.net.vip import vip_ruleset
from swarmlet.protocol import AttachmentInfo, NetworkState, NetworkView, ServiceEntry

log = logging.getLogger(__name__)

# How long a task may wait for the manager to give this host its address on the task's
# networks (the allocator does it as soon as the network is in use), and for the engine's
# copies of them.
ATTACH_WAIT = 60.0
RETRY_WATCH = 2.0
RETRY_LEFTOVER = 1.0
LEFTOVER_QUICK_TRIES = 30
# How long a container's namespace may take to appear after its join, and how often to look.
NAMESPACE_WAIT = 10.0
NAMESPACE_POLL = 0.005


# A container created through swarmletd on a swarm network carries this label: the key its
# attachments were asked under (its ID is not known before the engine makes it); see
# swarmlet.api.containers, which sets it.
ATTACHMENT_KEY_LABEL = "com.swarmlet.attachment.key"


class Attachments(Protocol):
    """The manager's attachments of this node (``swarmlet.agent.attachments``, bound to the
    node's credentials and managers)."""

    async def attach(
        self, network: str, container_id: str, name: str, aliases: Sequence[str]
    ) -> AttachmentInfo: ...

    async def detach(self, attachment_id: str) -> None: ...

    async def list(self) -> list[AttachmentInfo]: ...


@dataclass(frozen=True)
class AttachedContainer:
    """A plain container's place on a swarm network: the engine's copy to name, the address."""

    network_id: str
    local_network: str  # the engine's copy's name
    address: str  # CIDR
    attachment_id: str
    # The host's own address on the network: the embedded DNS answers there.
    nameserver: str


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
        attachments: Attachments | None = None,
    ) -> None:
        self._engine = engine
        self._attachments = attachments
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
        # Plain containers' namespaces (SandboxKey) → the swarm networks they joined, and each
        # such endpoint → (its namespace, its network): their VIP rules follow changes too.
        self._containers: dict[str, set[str]] = {}
        self._container_endpoints: dict[str, tuple[str, str]] = {}
        self._vip_writers: dict[str, asyncio.Task[None]] = {}
        # The VIP table last written in each namespace, and whether the manager's view has
        # changed since the refresher's last pass.
        self._vips_written: dict[str, str] = {}
        self._vips_dirty = asyncio.Event()
        # What apply last did, to do nothing again when nothing changed.
        self._host_networks: frozenset[str] | None = None
        self._mesh: nft.Json | None = None
        # Each endpoint's host-mode ports (ProgramExternalConnectivity), one table for all.
        self._host_ports: dict[str, list[HostPort]] = {}
        self._copies_of: tuple[tuple[str, str, str], ...] | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watching_containers(), name="container-events")
            group.create_task(self._removing_leftover_copies(), name="leftover-copies")
            group.create_task(self._refreshing_vips(), name="vip-tables")
            try:
                await self._dns.serve([])
            finally:
                await self._dns.aclose()

    async def _watching_containers(self) -> None:
        while True:
            try:
                await self.watch_containers()
            except SwarmletError as exc:
                log.warning("watching the engine's containers: %s", exc.message)
            if self._attachments is None:
                return
            # The engine restarted, or the manager could not be reached: again, a while later.
            await self._clock.sleep(RETRY_WATCH)

    async def _removing_leftover_copies(self) -> None:
        """The engine refuses to remove a network while containers on it are being removed
        (a stack or a service removed with its network), and to make one under a name still
        taken: try again until it is done."""
        tries = 0
        while True:
            # Every second for a while, then less and less often: the engine may keep a
            # network whose endpoints it miscounted until it restarts.
            await self._clock.sleep(RETRY_LEFTOVER * 2 ** max(0, tries - LEFTOVER_QUICK_TRIES))
            if not self.local_networks.leftover:
                tries = 0
                continue
            tries = min(tries + 1, LEFTOVER_QUICK_TRIES + 6)
            try:
                async with self._programming:
                    await self.local_networks.sync(self._state.networks)
            except SwarmletError as exc:
                log.warning("the engine's copies of the networks: %s", exc.message)

    # The manager's view

    async def apply(self, state: NetworkState) -> None:
        """Program the host for the manager's view. Each part is redone only when its own
        input changed: a batch of task changes usually touches the forwarding entries, the DNS
        and the VIP tables alone, and tasks waiting to attach wait for this to finish."""
        async with self._programming:
            self._state = state
            networks = frozenset(view.id for view in state.networks)
            if networks != self._host_networks:
                # First, so that what the host had before the swarm is remembered before
                # anything changes it; again when the networks change, since a restarted
                # dockerd may have put its rules first.
                await asyncio.to_thread(self._host.apply)
                self._host_networks = networks
            await program_host(state.networks, self._host_addr, state.data_path_port)
            mesh = mesh_for(state)
            if mesh != self._mesh:
                await nft.apply(mesh)
                self._mesh = mesh
            copies = tuple((view.id, view.name, view.subnet) for view in state.networks)
            if copies != self._copies_of:
                await self.local_networks.sync(state.networks)
                self._copies_of = copies
            self._update_dns()
            await self._listen()
            self._vips_dirty.set()
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
                self._vips_dirty.set()
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
            # A plain container (docker run --network): its services' VIPs, and out through
            # this host. The engine keeps the first gateway a container is given.
            networks = self._containers.setdefault(sandbox_key, set())
            networks.add(endpoint.network_id)
            self._container_endpoints[endpoint.id] = (sandbox_key, endpoint.network_id)
            self._program_vips_soon(sandbox_key)
            return Joined(gateway=self._host_address(endpoint.network_id))
        task = self._tasks[expected.task_id]
        if expected.index != 0:
            return Joined(gateway=None)
        self._netns[task.id] = sandbox_key
        self._program_vips_soon(sandbox_key)
        return Joined(gateway=self._host_address(endpoint.network_id))

    async def leave(self, endpoint_id: str) -> None:
        netns, network_id = self._container_endpoints.pop(endpoint_id, ("", ""))
        if netns:
            networks = self._containers.get(netns, set())
            networks.discard(network_id)
            if networks:
                self._vips_dirty.set()
            else:
                self._containers.pop(netns, None)
                self._vips_written.pop(netns, None)
        await delete_veths([host_side(endpoint_id)])

    async def remove_endpoint(self, endpoint_id: str) -> None:
        await self.unpublish(endpoint_id)
        await delete_veths([host_side(endpoint_id)])

    async def publish(self, endpoint_id: str, ports: Sequence[HostPort]) -> None:
        self._host_ports[endpoint_id] = [
            port if port.host_port else replace(port, host_port=free_port(port.protocol))
            for port in ports
        ]
        await self._apply_host_ports()

    async def unpublish(self, endpoint_id: str) -> None:
        if self._host_ports.pop(endpoint_id, None) is not None:
            await self._apply_host_ports()

    async def _apply_host_ports(self) -> None:
        ports = [port for bound in self._host_ports.values() for port in bound]
        await nft.apply(host_ports_ruleset(ports) if ports else remove_host_ports_ruleset())

    async def request_address(self, network_id: str, address: str) -> str:
        if not address:
            view = self._view(network_id)
            # A container joins a swarm network through swarmletd, which asks the manager for
            # its address first (attach_container); straight to the engine, it has none.
            raise InvalidSpec(
                f"network {view.name} is a swarm network: create the container through"
                " swarmletd (DOCKER_HOST) to have an address on it"
            )
        return address

    # Plain containers on attachable networks (swarmlet.api.containers)

    async def attach_container(
        self, network: str, key: str, name: str, aliases: Sequence[str]
    ) -> AttachedContainer:
        """Ask the manager for a place on ``network`` (as the user named it) for the container
        known by ``key``, and wait until this host has the network and the engine its copy."""
        if self._attachments is None:
            raise Unavailable("this node is not in a swarm")
        info = await self._attachments.attach(network, key, name, aliases)
        try:
            local = await self._wait_for_copy(info.network)
        except SwarmletError:
            await self._attachments.detach(info.id)
            raise
        nameserver = self._host_address(info.network)
        return AttachedContainer(info.network, local, info.address, info.id, nameserver)

    def local_network(self, ref: str) -> tuple[str, str] | None:
        for view in self._state.networks:
            if ref in (view.id, view.name) or (len(ref) >= 3 and view.id.startswith(ref)):
                name = self.local_networks.name_of(view.id)
                return (name, view.id) if name else None
        return None

    async def detach_containers(self, keys: Iterable[str], network_id: str | None = None) -> None:
        """Give back the attachments of the containers known by ``keys`` (on ``network_id``
        alone, if given)."""
        if self._attachments is None:
            return
        wanted = set(keys)
        for info in await self._attachments.list():
            if info.container_id in wanted and network_id in (None, info.network):
                await self._attachments.detach(info.id)

    async def watch_containers(self) -> None:
        """Give back the attachments of containers the engine removes (`docker rm`, a
        `--rm` container's exit); first, those of containers that went while this daemon was
        not running."""
        if self._attachments is None:
            return
        await self._release_gone(self._attachments)
        async for event in self._engine.container_events(["destroy"]):
            actor = event.get("Actor") or {}
            attributes = actor.get("Attributes") or {}
            keys = {str(actor.get("ID", ""))} | {str(attributes.get(ATTACHMENT_KEY_LABEL, ""))}
            try:
                await self.detach_containers(keys - {""})
            except SwarmletError as exc:
                log.warning("releasing the attachments of a removed container: %s", exc.message)

    async def _release_gone(self, attachments: Attachments) -> None:
        containers = await self._engine.list_containers({})
        alive = {c.id for c in containers} | {
            c.labels[ATTACHMENT_KEY_LABEL] for c in containers if ATTACHMENT_KEY_LABEL in c.labels
        }
        for info in await attachments.list():
            if info.container_id not in alive:
                await attachments.detach(info.id)

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
        netns = self._netns.pop(task_id, None)
        if netns is not None:
            self._vips_written.pop(netns, None)
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

    def _services_on(self, networks: set[str]) -> list[ServiceEntry]:
        return [
            service
            for view in self._state.networks
            if view.id in networks and not view.ingress
            for service in view.services
        ]

    def _program_vips_soon(self, netns: str) -> None:
        """Write the VIP table of a namespace as soon as it exists. At the join the engine has
        not made it yet: it binds it at ``SandboxKey`` from the container's prestart hook,
        moves the interfaces in, and the process starts right after; so the table is written
        from here, tried every few milliseconds, and may land just after the process starts
        (a first connection to a VIP in those milliseconds fails; Swarm writes its IPVS rules
        inside that hook, which a plugin cannot reach)."""
        if netns in self._vip_writers:
            return
        writer = asyncio.create_task(self._write_vips_when_ready(netns), name=f"vips-{netns}")
        self._vip_writers[netns] = writer
        writer.add_done_callback(lambda _: self._vip_writers.pop(netns, None))

    async def _write_vips_when_ready(self, netns: str) -> None:
        deadline = asyncio.get_running_loop().time() + NAMESPACE_WAIT
        while True:
            networks = self._networks_in(netns)
            if not networks:
                return  # its container is gone already
            if not os.path.exists(netns) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(NAMESPACE_POLL)
                continue
            try:
                await self._apply_vips(netns, networks)
                return
            except SwarmletError as exc:
                if asyncio.get_running_loop().time() > deadline:
                    log.warning("VIP rules in %s: %s", netns, exc.message)
                    return
            await asyncio.sleep(NAMESPACE_POLL)

    def _networks_in(self, netns: str) -> set[str]:
        networks = set(self._containers.get(netns, ()))
        for task_id, task_netns in list(self._netns.items()):
            task = self._tasks.get(task_id)
            if task_netns == netns and task is not None:
                networks.update(_networks_of(task))
        return networks

    async def _refreshing_vips(self) -> None:
        """Keep every local namespace's VIP table as the manager's latest view says, out of
        ``apply``: a pass after each change (several changes during a pass make one more
        pass), each table written only when it differs from what was written last. No pause
        between passes: a task that goes must get no new connection through a VIP once the
        DNS has dropped it."""
        while True:
            await self._vips_dirty.wait()
            self._vips_dirty.clear()
            namespaces = {*self._netns.values(), *self._containers}
            for netns in namespaces:
                await self._write_vips(netns)

    async def _write_vips(self, netns: str) -> None:
        networks = self._networks_in(netns)
        if not networks or netns in self._vip_writers or not os.path.exists(netns):
            return  # gone, or not made yet: its own writer sees the change when it writes
        try:
            await self._apply_vips(netns, networks)
        except SwarmletError as exc:
            # The namespace may be gone already (its container ended); its detach follows.
            log.warning("VIP rules in %s: %s", netns, exc.message)

    async def _apply_vips(self, netns: str, networks: set[str]) -> None:
        """Write the VIP table of the services on ``networks`` in ``netns``, unless it is the
        one written there last."""
        ruleset = vip_ruleset(self._services_on(networks))
        written = json.dumps(ruleset, sort_keys=True)
        if self._vips_written.get(netns) == written:
            return
        await nft.apply_in_netns_path(netns, ruleset)
        self._vips_written[netns] = written

    async def _wait_for_copy(self, network_id: str) -> str:
        def ready() -> str:
            name = self.local_networks.name_of(network_id)
            views = [v for v in self._state.networks if v.id == network_id]
            return name if name and views and views[0].local_address else ""

        async with self._applied:
            try:
                async with asyncio.timeout(ATTACH_WAIT):
                    return await self._applied.wait_for(ready)
            except TimeoutError:
                raise Unavailable(f"this host is not on network {network_id} yet") from None

    def _update_dns(self) -> None:
        # A task is scoped to every network it is on, whichever of its addresses it asks from.
        # A task's own DNS servers (`--dns`) are its upstreams: the engine is given this host's
        # resolver as the container's nameserver in their place.
        scopes: dict[str, list[str]] = {}
        upstreams: dict[str, list[str]] = {}
        for task in self._tasks.values():
            networks = [attachment.network.id for attachment in task.networks_attachments]
            dns_config = task.spec.container_spec.dns_config
            servers = list(dns_config.nameservers or ()) if dns_config else []
            for attachment in task.networks_attachments:
                for address in attachment.addresses:
                    scopes[ip_of(address)] = networks
                    if servers:
                        upstreams[ip_of(address)] = servers
        self._dns.update(self._state.networks, scopes, upstreams)

    async def _listen(self) -> None:
        addresses = [
            ip_of(view.local_address) for view in self._state.networks if view.local_address
        ]
        try:
            await self._dns.listen_on(addresses)
        except Unavailable as exc:
            log.warning("embedded DNS: %s", exc.message)


def _networks_of(task: Task) -> list[str]:
    return [attachment.network.id for attachment in task.networks_attachments]
