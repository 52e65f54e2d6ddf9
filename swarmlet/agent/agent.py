"""The agent: the worker that runs this node's tasks, and its session to the managers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from swarmlet.agent import attachments
from swarmlet.agent.certificates import CertificateRenewer
from swarmlet.agent.dependencies import Dependencies
from swarmlet.agent.describe import describe_node
from swarmlet.agent.devices import NO_DEVICES, NodeDevices
from swarmlet.agent.engine import EngineClient
from swarmlet.agent.logs import LogPublisher
from swarmlet.agent.network import NetworkAgent
from swarmlet.agent.plugin_server import PluginServer
from swarmlet.agent.session import Session, SessionClosed
from swarmlet.agent.task_files import DEFAULT_ROOT, TaskFiles, files_dir
from swarmlet.agent.worker import Worker
from swarmlet.clock import Clock
from swarmlet.models import NodeDescription, Task, TLSInfo
from swarmlet.net.driver import NetworkPlugin
from swarmlet.net.host import HostChanges
from swarmlet.pki import Credentials, node_tls_info
from swarmlet.protocol import AttachmentInfo, Certificates, Message, NodeTLS, StatusUpdate


class Agent:
    def __init__(
        self,
        *,
        engine: EngineClient,
        node_id: str,
        credentials: Credentials,
        manager_addrs: Sequence[str],
        addr: str,
        hostname: str,
        data_addr: str = "",
        clock: Clock,
        container_labels: Mapping[str, str],
        files_root: Path = DEFAULT_ROOT,
        host: HostChanges,
        plugin: str,
        network_suffix: str = "",
        renewed: Callable[[], None] | None = None,
        devices: NodeDevices = NO_DEVICES,
        on_managers: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        # Told the swarm's managers whenever the session learns they changed (the daemon
        # keeps them, for the next start).
        self._on_managers = on_managers
        # The generic resources the node advertises, and the devices behind them.
        self._devices = devices
        # Told after each renewal of the node's certificate (its role may have changed).
        self._renewed = renewed
        # The secrets and configs of the last assignments, in memory only; their files are on
        # a tmpfs of this node's own (``<files_root>/<node id>/secrets``).
        self.dependencies = Dependencies()
        self.files = TaskFiles(files_dir(node_id, files_root), self.dependencies)
        self._hostname = hostname
        self._attachments = ManagerAttachments(credentials, manager_addrs)
        # The node's last description, as the session sent it: its tasks' templates read the
        # hostname and platform from it.
        self._description: NodeDescription | None = None
        self.network = NetworkAgent(
            engine,
            # The VXLAN endpoint: the data path address, if the node was given one.
            host_addr=data_addr or addr,
            clock=clock,
            host=host,
            plugin=plugin,
            network_suffix=network_suffix,
            attachments=self._attachments,
        )
        # The engine's network and IPAM driver, through which tasks' containers join the
        # overlay networks.
        self.plugin = PluginServer(NetworkPlugin(self.network), plugin)
        self.worker = Worker(
            engine,
            node_id,
            self._report,
            clock,
            container_labels=container_labels,
            networking=self.network,
            files=self.files,
            devices=devices,
            node=lambda: self._description,
        )
        self._credentials = credentials
        self.certificates = CertificateRenewer(
            credentials, manager_addrs, clock, renewed=self._certificate_renewed
        )
        # ``docker service logs``: this node's containers' logs, sent on the session.
        self.logs = LogPublisher(engine, node_id, self._send, clock)
        self.session = Session(
            credentials=credentials,
            manager_addrs=manager_addrs,
            addr=addr,
            data_addr=data_addr,
            describe=self._describe,
            assign=self._assign,
            statuses=self.worker.statuses,
            clock=clock,
            network=self.network.apply,
            certificates=self._update_certificates,
            dependencies=self.dependencies.replace,
            logs=self.logs,
            on_managers=self._managers_changed,
        )

    def _managers_changed(self, addrs: list[str]) -> None:
        """The swarm's managers, as the session learnt them: attachments and renewals go to them
        too."""
        self._attachments.managers = list(addrs)
        self.certificates.managers = list(addrs)
        if self._on_managers is not None:
            self._on_managers(list(addrs))

    async def _describe(self) -> NodeDescription:
        description = await describe_node(self._engine, self._hostname, self._devices.generic)
        self._description = description
        return description.replace(tls_info=self._tls_info())

    def _tls_info(self) -> TLSInfo:
        credentials = self._credentials
        return node_tls_info(credentials.node_path.read_text(), credentials.trust())

    async def _report_tls(self) -> None:
        # Without a session, the next one's registration carries it.
        with contextlib.suppress(SessionClosed):
            await self.session.send(NodeTLS(tls_info=self._tls_info()))

    async def _certificate_renewed(self) -> None:
        if self._renewed is not None:
            self._renewed()
        await self._report_tls()

    async def _update_certificates(self, update: Certificates) -> None:
        """Trust what the manager says, and renew when asked (a new role, a new root)."""
        if self._credentials.trust() != update.trust:
            self._credentials.save_trust(update.trust)
            await self._report_tls()
        if update.renew:
            self.certificates.renew_soon()

    async def _assign(self, tasks: Sequence[Task]) -> None:
        await self.network.adopt(tasks)
        await self.worker.assign(tasks)

    async def _report(self, updates: list[StatusUpdate]) -> None:
        # The worker is built before the session it reports through.
        await self.session.report(updates)

    async def _send(self, message: Message) -> None:
        await self.session.send(message)

    async def unmount_secrets(self) -> None:
        """Leaving the swarm, once the agent is stopped: forget the secrets and configs and
        unmount their tmpfs, with every file on it."""
        self.dependencies.replace((), ())
        await self.files.unmount()

    async def run(self) -> None:
        await self.plugin.start()
        try:
            await self._run()
        finally:
            await self.plugin.stop()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.worker.run(), name="worker")
            group.create_task(self.session.run(), name="session")
            group.create_task(self.network.run(), name="network")
            group.create_task(self.certificates.run(), name="certificates")
            group.create_task(self.logs.run(), name="logs")


class ManagerAttachments:
    """This node's attachments at its managers (``NetworkAgent``'s ``Attachments``)."""

    def __init__(self, credentials: Credentials, manager_addrs: Sequence[str]) -> None:
        self._credentials = credentials
        # Tried in turn; the agent replaces them when the swarm's managers change.
        self.managers = list(manager_addrs)

    async def attach(
        self, network: str, container_id: str, name: str, aliases: Sequence[str]
    ) -> AttachmentInfo:
        return await attachments.attach(
            self._credentials, self.managers, network, container_id, name=name, aliases=aliases
        )

    async def detach(self, attachment_id: str) -> None:
        await attachments.detach(self._credentials, self.managers, attachment_id)

    async def list(self) -> list[AttachmentInfo]:
        return await attachments.list_attachments(self._credentials, self.managers)
