"""The daemon's swarm state and verbs (``SwarmControl``): init, join, leave, restart.

It owns the node's identity and starts what the node's role needs: the manager (store,
controllers, dispatcher) on a manager, and the agent on every node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from swarmlet import collector
from swarmlet.agent import certificates
from swarmlet.agent.agent import Agent
from swarmlet.agent.describe import describe_node
from swarmlet.agent.devices import NO_DEVICES, NodeDevices
from swarmlet.agent.engine import EngineClient
from swarmlet.agent.executor import LABEL_NODE_ID
from swarmlet.agent.local_networks import LocalNetworks
from swarmlet.agent.network import NetworkAgent
from swarmlet.agent.plugin_server import teardown_plugins
from swarmlet.agent.task_files import unmount_secrets
from swarmlet.aio import cancel_and_wait
from swarmlet.api.backend import NO_CLUSTER, ClusterBackend
from swarmlet.api.common import WORKER
from swarmlet.api.control import InitRequest, JoinRequest, LeaderRoute, LocalNodeState
from swarmlet.clock import Clock
from swarmlet.daemon import etcd_store
from swarmlet.daemon import state as identity_file
from swarmlet.daemon.addresses import advertise_addr, data_path_addr, split_addr
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.ids import new_id
from swarmlet.models import (
    DEFAULT_POOLS,
    Cluster,
    ClusterSpec,
    ManagerStatus,
    Node,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
)
from swarmlet.net.host import HostChanges
from swarmlet.net.host_ports import remove_host_ports
from swarmlet.net.mesh import remove_mesh
from swarmlet.net.netlink import program_host
from swarmlet.pki import Credentials, JoinToken
from swarmlet.pki.tls import client_context

if TYPE_CHECKING:
    from swarmlet.daemon.etcd_store import EtcdStore
    from swarmlet.manager.api.leader import Leader
    from swarmlet.manager.etcd.join import MemberGrant, MemberRequest
    from swarmlet.manager.store import Store, Tx

# The manager's packages (store, CA, allocator, controllers, the swarm's API handlers) are
# imported where the node becomes or runs a manager, not above: a worker never needs them, and
# they would stay in its memory for nothing.

log = logging.getLogger(__name__)

ALREADY_IN_SWARM = (
    'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and'
    " join another one."
)
NOT_IN_SWARM = "This node is not part of a swarm"


class NodeControl:
    def __init__(
        self,
        *,
        state_dir: Path,
        engine: EngineClient,
        engine_socket: str,
        hostname: str,
        clock: Clock,
        container_labels: Mapping[str, str],
        min_cert_expiry: timedelta = timedelta(hours=1),
        network_plugin: str = "swarmlet",
        network_suffix: str = "",
        node_devices: NodeDevices = NO_DEVICES,
    ) -> None:
        self._state_dir = state_dir
        # The generic resources the node advertises, and the devices behind them.
        self._node_devices = node_devices
        self._network_plugin = network_plugin
        self._network_suffix = network_suffix
        self._min_cert_expiry = min_cert_expiry
        self._engine = engine
        self._engine_socket = engine_socket
        self._hostname = hostname
        self._clock = clock
        self._container_labels = dict(container_labels)
        self._identity = identity_file.load_identity(state_dir)
        self._credentials = Credentials.of(state_dir)
        # With autolock, the key the operator gave (or was given); '' when autolock is off.
        self._unlock_key = ""
        self._locked = False
        self._store: Store | None = None
        # The member, store and election while this manager's store is on etcd.
        self._etcd: EtcdStore | None = None
        self._manager_task: asyncio.Task[None] | None = None
        # A move of the store from SQLite to etcd (a second manager asked to join), and a
        # promoted node joining etcd; True while the move has stopped the manager.
        self._moving: asyncio.Task[None] | None = None
        self._in_move = False
        self._joining: asyncio.Task[None] | None = None
        self._agent: Agent | None = None
        # Set while the node's certificate says manager (the leader ignores it: it has the store).
        self._leader_route: LeaderRoute | None = None
        # Who answers the API's swarm requests (swarmlet.api.backend), set by _set_cluster
        # whenever the role or the state changes; the follower's client of the leader is kept
        # across them (its connections).
        self._cluster: ClusterBackend = NO_CLUSTER
        self._leader_client: Leader | None = None
        self._running: list[asyncio.Task[None]] = []
        self._busy = asyncio.Lock()
        self._group: asyncio.TaskGroup | None = None
        # Whether ``open`` has run.
        self._opened = False

    # SwarmControl

    @property
    def state(self) -> LocalNodeState:
        if self._identity is None:
            return LocalNodeState.INACTIVE
        return LocalNodeState.LOCKED if self._locked else LocalNodeState.ACTIVE

    @property
    def node_id(self) -> str:
        return self._identity.node_id if self._identity else ""

    @property
    def node_addr(self) -> str:
        return self._identity.advertise_addr if self._identity else ""

    @property
    def store(self) -> Store | None:
        return self._store

    @property
    def leader(self) -> LeaderRoute | None:
        if self._store is not None or self._locked or self._identity is None:
            return None
        return self._leader_route

    @property
    def cluster(self) -> ClusterBackend:
        return self._cluster

    @property
    def manager_addrs(self) -> list[str]:
        return list(self._identity.manager_addrs) if self._identity else []

    @property
    def engine_socket(self) -> str:
        return self._engine_socket

    async def init(self, request: InitRequest) -> str:
        async with self._busy:
            if self._identity:
                if not request.force_new_cluster:
                    raise Unavailable(ALREADY_IN_SWARM)
                if self._store is None:
                    raise Unavailable(WORKER)
                # `--force-new-cluster` makes this manager the swarm's only one, keeping its
                # state: on etcd, its member forms a cluster of itself alone; on SQLite, the
                # swarm has one manager (this one) already.
                if self._etcd is not None:
                    await self._force_new_cluster(self._etcd, self._identity, request)
                return self._identity.node_id
            # Past the refusals: a worker asked to init stays without the manager's imports.
            from swarmlet.manager.store.encryption import create_key_file  # manager only

            addr = advertise_addr(request.advertise_addr, request.listen_addr)
            data_addr = data_path_addr(request.data_path_addr)
            listen_host, port = split_addr(request.listen_addr or "0.0.0.0:2377")
            identity = identity_file.NodeIdentity(
                node_id=new_id(),
                role=NodeRole.MANAGER,
                advertise_addr=addr,
                listen_addr=f"{listen_host or '0.0.0.0'}:{port}",
                data_path_addr=data_addr,
                manager_addrs=[f"{addr}:{port}"],
            )
            create_key_file(self._key_file)
            store = await self._open_store(None)
            try:
                await self._found_cluster(store, identity, request, await self._describe_self())
            except BaseException:
                store.close()
                identity_file.forget(self._state_dir)
                self._credentials.forget()
                raise
            identity_file.save_identity(self._state_dir, identity)
            self._identity = identity
            self._start(store)
            return identity.node_id

    async def _force_new_cluster(
        self, etcd: EtcdStore, identity: identity_file.NodeIdentity, request: InitRequest
    ) -> None:
        """Stop the manager and the member, restart the member alone from its data
        (``etcd_store.force_new_cluster``), and run the manager on it: it leads once the old
        leader's lease has run out. Its address is the member's: another is refused."""
        if request.advertise_addr:
            addr = advertise_addr(request.advertise_addr, request.listen_addr)
            if addr != identity.advertise_addr:
                raise InvalidSpec(
                    f"--force-new-cluster keeps this manager's address {identity.advertise_addr}"
                    f" (its etcd member's); {addr} was given"
                )
        log.info("forcing a new cluster of this manager alone from its etcd member's data")
        await self._stop_manager()
        self._etcd = self._store = None
        self._set_cluster()
        await etcd.close()
        try:
            self._etcd = await etcd_store.force_new_cluster(
                etcd.member.config, self._clock, etcd.dek
            )
        except Exception:
            # As before: the member and the store on it again (etcd.json is unchanged).
            self._etcd = await etcd_store.EtcdStore.open(etcd.member.config, self._clock, etcd.dek)
            self._start_manager(self._etcd.store)
            self._set_cluster()
            raise
        self._start_manager(self._etcd.store)
        self._set_cluster()

    async def _found_cluster(
        self,
        store: Store,
        identity: identity_file.NodeIdentity,
        request: InitRequest,
        description: NodeDescription,
    ) -> None:
        """The new cluster with its root CA, the ingress network, and the first manager with
        its certificate."""
        from swarmlet.manager.allocator import ingress_network  # manager only (see above)
        from swarmlet.manager.ca import CertificateAuthority, new_cluster_root
        from swarmlet.pki.ca import new_key_and_csr

        spec = ClusterSpec.model_validate(request.spec or {})
        root_ca, join_tokens = new_cluster_root(self._clock.now())
        cluster = Cluster(
            id=new_id(),
            spec=spec,
            join_tokens=join_tokens,
            root_ca=root_ca,
            default_addr_pool=list(request.default_addr_pool) or None,
            subnet_size=request.subnet_size,
            data_path_port=request.data_path_port,
        )
        # The routing mesh's network: its subnet is the pool's first.
        ingress = ingress_network(
            new_id(), cluster.default_addr_pool or DEFAULT_POOLS, cluster.subnet_size
        )

        def found(tx: Tx) -> None:
            tx.create(cluster)
            tx.create(ingress)

        await store.update(found)
        node = Node(
            id=identity.node_id,
            spec=NodeSpec(role=NodeRole.MANAGER),
            description=description,
            status=NodeStatus(state=NodeState.READY, addr=identity.advertise_addr),
            manager_status=ManagerStatus(leader=True, addr=identity.manager_addrs[0]),
        )
        key, csr = new_key_and_csr()
        issued = await CertificateAuthority(store, self._clock).create_node_certificate(node, csr)
        self._credentials.save(trust_pem=issued.trust, cert_pem=issued.certificate, key_pem=key)

    async def join(self, request: JoinRequest) -> None:
        async with self._busy:
            if self._identity:
                raise Unavailable(ALREADY_IN_SWARM)
            if not request.remote_addrs:
                raise InvalidSpec("at least 1 RemoteAddr is required to join")
            JoinToken.parse(request.join_token)
            managers = [f"{host}:{port}" for host, port in map(split_addr, request.remote_addrs)]
            towards, _ = split_addr(request.remote_addrs[0])
            addr = advertise_addr(request.advertise_addr, request.listen_addr, towards)
            data_addr = data_path_addr(request.data_path_addr)
            node_id = await certificates.join(managers, request.join_token, self._credentials)
            # The manager token gives a manager certificate.
            role = self._credentials.certificate().role
            listen_host, port = split_addr(request.listen_addr or "0.0.0.0:2377")
            identity = identity_file.NodeIdentity(
                node_id=node_id,
                role=role,
                advertise_addr=addr,
                listen_addr=f"{listen_host or '0.0.0.0'}:{port}",
                data_path_addr=data_addr,
                manager_addrs=managers,
            )
            if role is NodeRole.MANAGER:
                # A manager joins the swarm's etcd before its agent starts.
                try:
                    self._etcd = await self._join_etcd(identity)
                except BaseException:
                    self._credentials.forget()
                    etcd_store.forget(self._state_dir)
                    identity_file.forget(self._state_dir)
                    raise
            identity_file.save_identity(self._state_dir, identity)
            self._identity = identity
            self._start(self._etcd.store if self._etcd is not None else None)

    async def unlock(self, key: str) -> None:
        from swarmlet.manager.store.encryption import parse_unlock_key  # manager only (above)

        async with self._busy:
            unlock_key = parse_unlock_key(key)
            store = await self._open_store(unlock_key)  # Unauthorized for a key that does not fit
            self._unlock_key = key.strip()
            self._locked = False
            self._start(store)

    def unlock_key(self) -> str:
        return self._unlock_key

    async def set_autolock(self, enabled: bool, rotate: bool) -> str:
        # Manager only (see above).
        from swarmlet.manager.store.encryption import (
            new_unlock_key,
            parse_unlock_key,
            rekey_key_file,
        )

        async with self._busy:
            current = parse_unlock_key(self._unlock_key) if self._unlock_key else None
            if not enabled:
                rekey_key_file(self._key_file, current, None)
                self._unlock_key = ""
            elif rotate or current is None:
                new = new_unlock_key()
                rekey_key_file(self._key_file, current, parse_unlock_key(new))
                self._unlock_key = new
            return self._unlock_key

    async def leave(self, force: bool) -> None:
        async with self._busy:
            identity = self._identity
            if identity is None:
                raise Unavailable(NOT_IN_SWARM)
            refusal = None if force else await self._leave_refusal(identity)
            if refusal is not None:
                raise Unavailable(refusal)
            await self._stop()
            # The engine calls the network plugin for each endpoint and network it removes.
            async with teardown_plugins([self._network_plugin]):
                await self._remove_containers(identity.node_id)
                local = LocalNetworks(self._engine, self._network_plugin, self._network_suffix)
                await local.remove_all()
            # Secrets and configs lived in memory and on this node's tmpfs only.
            await unmount_secrets(identity.node_id)
            # Nothing of the swarm's networks stays on the host: bridges, tunnels, rules.
            await program_host([], identity.advertise_addr)
            await remove_mesh()
            await remove_host_ports()
            await asyncio.to_thread(HostChanges(self._state_dir).restore)
            identity_file.forget(self._state_dir)
            etcd_store.forget(self._state_dir)
            self._credentials.forget()
            self._identity = None
            self._leader_route = None
            self._unlock_key = ""
            self._locked = False
            self._set_cluster()

    async def _leave_refusal(self, identity: identity_file.NodeIdentity) -> str | None:
        """Why ``docker swarm leave`` without ``--force`` is refused here, in Swarm's words
        (``swarmlet.manager.quorum``): a manager is always refused, with the quorum it would
        break counted from the managers the store holds and those the view finds reachable."""
        on_etcd = self._etcd is not None or etcd_store.on_etcd(self._state_dir)
        manager = identity.role is NodeRole.MANAGER or on_etcd or self.leader is not None
        if not manager and not self._locked:
            return None
        from swarmlet.manager.leadership import ManagerView, SoleManager  # manager only
        from swarmlet.manager.quorum import leave_refusal, manager_counts

        store = self._store
        if self._locked or store is None:
            # Locked, or a manager that does not reach the swarm's store (promoted, not yet
            # a member): moby's "not an active manager".
            return leave_refusal(0, 0, active=False, locked=self._locked)
        view: ManagerView = self._etcd.election if self._etcd else SoleManager(identity.node_id)
        try:
            reachable = await view.reachable()
        except Unavailable:
            return leave_refusal(0, 0, active=True, locked=False, self_reachable=False)
        managers = [node.id for node in store.all(Node) if node.manager_status is not None]
        counts = manager_counts(managers, reachable, identity.node_id)
        return leave_refusal(
            counts.reachable,
            counts.unreachable,
            active=True,
            locked=False,
            self_reachable=counts.self_reachable,
        )

    # Running the node's parts

    async def open(self) -> None:
        """Load a manager's store (unless autolock keeps it sealed) before the daemon serves
        its API: loading awaits, and no request may find the manager without its store.
        ``run`` opens it if this was not called."""
        identity = self._identity
        if self._opened or identity is None or not self._holds_a_store(identity):
            return
        self._opened = True
        from swarmlet.manager.store.encryption import key_file_sealed  # manager only

        etcd_store.restore_unfinished_move(self._state_dir)

        # With autolock, nothing runs until `docker swarm unlock` gives the key.
        self._locked = key_file_sealed(self._key_file)
        if not self._locked:
            self._store = await self._open_store(None)
        self._set_cluster()

    async def run(self) -> None:
        """Start what the remembered identity needs and keep running until cancelled."""
        await self.open()
        async with asyncio.TaskGroup() as group:
            self._group = group
            identity = self._identity
            if self._store is not None:
                self._start(self._store)
            elif identity is not None and not self._holds_a_store(identity):
                self._start(None)
            await asyncio.Event().wait()

    def _holds_a_store(self, identity: identity_file.NodeIdentity) -> bool:
        """A manager that made the swarm, joined as one, or was promoted and joined etcd."""
        return identity.role == NodeRole.MANAGER or etcd_store.on_etcd(self._state_dir)

    def _start(self, store: Store | None) -> None:
        identity = self._identity
        if identity is None or self._group is None:
            raise Unavailable("the daemon is not running")
        if store is not None:
            self._start_manager(store)
        self._read_role()
        agent = Agent(
            engine=self._engine,
            node_id=identity.node_id,
            credentials=self._credentials,
            manager_addrs=identity.manager_addrs,
            addr=identity.advertise_addr,
            data_addr=identity.data_path_addr,
            hostname=self._hostname,
            clock=self._clock,
            container_labels=self._container_labels,
            host=HostChanges(self._state_dir),
            plugin=self._network_plugin,
            network_suffix=self._network_suffix,
            renewed=self._read_role,
            devices=self._node_devices,
            on_managers=self._managers_changed,
        )
        self._agent = agent
        self._running.append(self._group.create_task(agent.run(), name="agent"))

    def _managers_changed(self, addrs: list[str]) -> None:
        """The swarm's managers as the session last heard them, remembered: after a restart
        the agent (and a follower's route) starts from them, not from the one manager it
        joined through, which may be gone or no longer lead."""
        identity = self._identity
        if identity is None or not addrs or identity.manager_addrs == addrs:
            return
        identity = identity.model_copy(update={"manager_addrs": list(addrs)})
        identity_file.save_identity(self._state_dir, identity)
        self._identity = identity

    def _start_manager(self, store: Store) -> None:
        """The manager on ``store``: under the election on etcd, else the sole manager."""
        identity = self._identity
        if identity is None or self._group is None:
            raise Unavailable("the daemon is not running")
        from swarmlet.manager.api.forwarded import forwarded_app  # manager only (see above)
        from swarmlet.manager.etcd.join import member_routes
        from swarmlet.manager.manager import Manager

        # The store is loaded: from here the heap is mostly the cluster's objects.
        collector.tune_for_a_long_lived_store()
        self._store = store
        api = forwarded_app(self, self._clock, min_cert_expiry=self._min_cert_expiry)
        manager = Manager(
            store,
            self._clock,
            identity.node_id,
            identity.listen_addr,
            self._credentials,
            api,
            leadership=self._etcd.election if self._etcd is not None else None,
            routes=member_routes(store, self._clock, self),
        )
        self._manager_task = self._group.create_task(manager.run(), name="manager")
        self._running.append(self._manager_task)

    async def _stop_manager(self) -> None:
        task, self._manager_task = self._manager_task, None
        if task is not None:
            self._running.remove(task)
            await cancel_and_wait(task)

    def _read_role(self) -> None:
        """Take the role the node's certificate gives it: at start, and after each renewal
        (``docker node promote``/``demote`` renew it). A manager that does not hold the store
        forwards the cluster's requests to the leader with that certificate."""
        identity = self._identity
        was_manager = self._leader_route is not None
        self._leader_route = None
        if identity is None or not self._credentials.exists():
            return
        if self._credentials.certificate().role is NodeRole.MANAGER:
            tls = client_context(self._credentials.trust(), self._credentials)
            self._leader_route = LeaderRoute(addrs=tuple(identity.manager_addrs), tls=tls)
        is_manager = self._leader_route is not None
        if self._store is None and was_manager != is_manager:
            log.info("this node is now a %s", "manager" if is_manager else "worker")
        if is_manager and self._store is None and not self._locked:
            self._join_when_promoted()
        elif not is_manager and self._etcd is not None:
            self._leave_when_demoted()
        self._set_cluster()

    def _set_cluster(self) -> None:
        """Give the API the cluster backend of the node's role and state now: the store's
        while this node holds it (active, unlocked), the leader's while its certificate says
        manager and another holds the store, else none."""
        store = self._store if self.state is LocalNodeState.ACTIVE else None
        route = self.leader
        if self._in_move:
            self._cluster = etcd_store.MOVING_BACKEND
        elif store is not None:
            from swarmlet.manager.api.cluster import LocalCluster  # manager only (see above)

            if self._etcd is not None:
                from swarmlet.manager.api.lost_quorum import LeaderRequired  # manager only

                # On etcd, the election tells which managers lead and are reachable, and a
                # request is answered only while etcd has a leader (Swarm's lost quorum).
                self._cluster = LeaderRequired(store, self._etcd.election)
            else:
                self._cluster = LocalCluster(store)
        elif route is not None:
            from swarmlet.manager.api.follower import RemoteCluster  # manager only
            from swarmlet.manager.api.leader import Leader

            if self._leader_client is None:
                self._leader_client = Leader()
            self._cluster = RemoteCluster(route, self._leader_client)
        else:
            self._cluster = NO_CLUSTER

    async def close(self) -> None:
        """Close the follower's client of the leader, if the node ever was one, and stop the
        etcd member, if the node runs one."""
        if self._leader_client is not None:
            await self._leader_client.close()
        if self._etcd is not None:
            await self._etcd.close()
            self._etcd = None

    def attacher(self) -> NetworkAgent | None:
        """The host's network agent while the node is in a swarm: plain containers join the
        swarm's attachable networks through it (swarmlet.api.containers)."""
        return self._agent.network if self._agent is not None else None

    async def _stop(self) -> None:
        self._agent = None
        for pending in (self._joining, self._moving):
            if pending is not None and pending is not asyncio.current_task():
                await cancel_and_wait(pending)
        self._joining = self._moving = None
        for task in reversed(self._running):
            await cancel_and_wait(task)
        self._running.clear()
        self._manager_task = None
        if self._etcd is not None:
            await self._etcd.close()  # the store, then the member
            self._etcd = None
        elif self._store is not None:
            self._store.close()
        self._store = None
        self._set_cluster()

    @property
    def _key_file(self) -> Path:
        return self._state_dir / identity_file.KEY_FILE

    async def _open_store(self, unlock_key: bytes | None) -> Store:
        """The manager's store, its rows sealed with the key file's DEK, loaded: on etcd when
        ``etcd.json`` says so (its member started), else SQLite's."""
        # Manager only (see above).
        from swarmlet.manager.store import Store
        from swarmlet.manager.store.encryption import Cipher, read_dek
        from swarmlet.manager.store.sqlite import SqliteBackend

        dek = read_dek(self._key_file, unlock_key)
        if etcd_store.on_etcd(self._state_dir):
            config = etcd_store.load_member(self._state_dir)
            self._etcd = await etcd_store.EtcdStore.open(config, self._clock, dek)
            return self._etcd.store
        backend = SqliteBackend(self._state_dir / identity_file.STORE_FILE, Cipher(dek))
        return await Store.open(backend, self._clock)

    # etcd: a second manager (docs/store.md, "Moving to etcd")

    async def add_member(self, node: Node, request: MemberRequest) -> MemberGrant:
        """A manager asks to join etcd (``swarmlet.manager.etcd.join``): on SQLite, the store
        moves to etcd first, and the joiner is told to ask again (503)."""
        if self._etcd is None:
            if self._store is None or self._identity is None:
                raise Unavailable("this manager does not hold the swarm's store")
            if self._group is not None and (self._moving is None or self._moving.done()):
                self._moving = self._group.create_task(self._move_to_etcd(), name="move-to-etcd")
            raise Unavailable(etcd_store.MOVING)
        return await self._etcd.add_member(node, request, self._clock, self._unlock_key)

    async def _move_to_etcd(self) -> None:
        """The store from SQLite to a new etcd cluster of this one member; the manager starts
        again on it (its agent's session drops and comes back; no task restarts). A move
        that fails before ``etcd.json`` is written leaves the manager on SQLite."""
        async with self._busy:
            store, identity = self._store, self._identity
            cluster = store.cluster() if store is not None else None
            if store is None or identity is None or cluster is None or self._etcd is not None:
                return
            dek = self._dek()
            try:
                member = await etcd_store.start_new_cluster(
                    self._state_dir, identity.node_id, identity.advertise_addr, cluster, self._clock
                )
            except Exception:
                log.exception("the store could not move to etcd: its member did not start")
                return
            log.info("moving the swarm's store to etcd")
            self._in_move = True
            self._set_cluster()  # the API answers 503 until the store is on etcd
            try:
                await self._stop_manager()  # nothing writes to SQLite from here
                count = await etcd_store.copy_store(store, member, dek)
            except Exception:
                log.exception("the store could not move to etcd; it stays on SQLite")
                await member.stop()
                self._in_move = False
                self._start_manager(store)
                self._set_cluster()
                return
            store.close()
            self._store = None
            etcd_store.finish_move(self._state_dir, member.config)
            self._etcd = await etcd_store.EtcdStore.open(member.config, self._clock, dek, member)
            self._in_move = False
            self._start_manager(self._etcd.store)
            self._set_cluster()
            log.info("the swarm's store is on etcd: %d objects moved", count)

    def _dek(self) -> bytes:
        from swarmlet.manager.store.encryption import parse_unlock_key, read_dek  # manager only

        unlock_key = parse_unlock_key(self._unlock_key) if self._unlock_key else None
        return read_dek(self._key_file, unlock_key)

    async def _join_etcd(self, identity: identity_file.NodeIdentity) -> EtcdStore:
        """This node's member added to the swarm's etcd through a manager, started, and the
        store opened on it."""
        etcd, unlock_key = await etcd_store.join_cluster(
            self._state_dir,
            identity.node_id,
            identity.advertise_addr,
            identity.manager_addrs,
            self._credentials,
            self._clock,
        )
        self._unlock_key = unlock_key
        return etcd

    def _join_when_promoted(self) -> None:
        """A worker whose renewed certificate says manager (``docker node promote``) joins
        etcd, once, and runs a manager on it."""
        if self._group is None or self._etcd is not None:
            return
        if self._joining is not None and not self._joining.done():
            return
        self._joining = self._group.create_task(self._become_manager(), name="join-etcd")

    def _leave_when_demoted(self) -> None:
        """A manager on etcd whose renewed certificate says worker (``docker node demote``)
        stops its manager and leaves etcd; its agent runs on."""
        if self._group is None or (self._joining is not None and not self._joining.done()):
            return
        self._joining = self._group.create_task(self._become_worker(), name="leave-etcd")

    async def _become_worker(self) -> None:
        async with self._busy:
            etcd, identity = self._etcd, self._identity
            if etcd is None or identity is None or self._in_move:
                return
            await self._stop_manager()
            self._etcd = self._store = None
            self._set_cluster()
            await etcd.leave_cluster(self._clock)
            etcd_store.forget(self._state_dir)
            self._key_file.unlink(missing_ok=True)
            self._unlock_key = ""
            identity = identity.model_copy(update={"role": NodeRole.WORKER})
            identity_file.save_identity(self._state_dir, identity)
            self._identity = identity
            log.info("this node is a worker: it left the swarm's etcd")

    async def _become_manager(self) -> None:
        async with self._busy:
            identity = self._identity
            if identity is None or self._store is not None:
                return
            try:
                etcd = await self._join_etcd(identity)
            except Exception:
                log.exception("this node could not join the swarm's etcd as a manager")
                return
            self._etcd = etcd
            identity = identity.model_copy(update={"role": NodeRole.MANAGER})
            identity_file.save_identity(self._state_dir, identity)
            self._identity = identity
            self._start_manager(etcd.store)
            self._set_cluster()
            log.info("this node is a manager on the swarm's etcd")

    async def _describe_self(self) -> NodeDescription:
        return await describe_node(self._engine, self._hostname, self._node_devices.generic)

    async def _remove_containers(self, node_id: str) -> None:
        """The node's task containers."""
        for container in await self._engine.list_containers({LABEL_NODE_ID: node_id}):
            await self._engine.remove_container(container.id, force=True)
