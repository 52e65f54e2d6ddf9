"""A manager's store on etcd, as the daemon runs it: the member's file, the member and the store
opened on it, the move of a swarm from SQLite, the grant a manager gives a joining one, and a
demoted manager's leaving.

``<state>/etcd.json`` (the member's configuration, ``MemberFile``) means this manager's store is
on etcd: the daemon starts the member (``Supervisor``), waits for it to be healthy, and opens
the store (``EtcdBackend``, sealed with the DEK of ``store.key``) and the election on it
(``EtcdStore.open``). The file is written last when a store moves to etcd or a manager joins
the cluster, so a node without it is on SQLite (or no manager), whatever else it holds: an
interrupted move starts again from nothing (``discard_member_data``).

The manager's modules are imported inside the functions: a worker imports ``swarmlet.daemon``
without them (tests/daemon/test_imports.py).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from swarmlet.aio import cancel_and_wait
from swarmlet.api.backend import Endpoint
from swarmlet.clock import Clock
from swarmlet.daemon.state import KEY_FILE, STORE_FILE
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.models import SECOND_NS, Cluster, Node

if TYPE_CHECKING:
    from swarmlet.manager.etcd import MemberConfig, Supervisor
    from swarmlet.manager.etcd.client import EtcdClient, MemberInfo
    from swarmlet.manager.etcd.election import Election
    from swarmlet.manager.etcd.join import MemberGrant, MemberRequest
    from swarmlet.manager.store import Store, Tx
    from swarmlet.pki import Credentials

log = logging.getLogger(__name__)

ETCD_FILE = "etcd.json"
MOVING = "the swarm's store is moving to etcd for a second manager; try again in a few seconds"
# SQLite's files, kept after a move under this suffix (the swarm as it was when it moved).
MOVED_SUFFIX = ".moved"
_SQLITE_FILES = (STORE_FILE, STORE_FILE + "-wal", STORE_FILE + "-shm")
HEALTHY_WITHIN_S = 60.0
# etcd refuses a member add until the cluster is ready for one (every member connected for
# 5 s, none added and not yet started): asked again for this long.
MEMBER_ADD_WITHIN_S = 15.0
MEMBER_ADD_RETRY_S = 0.5
# etcd's word for a cluster not ready for a change of members.
NOT_READY = "unhealthy cluster"


class MemberFile(BaseModel):
    """``etcd.json``: what the member needs to start again (``MemberConfig`` less the state
    directory, which is the file's own)."""

    model_config = ConfigDict(frozen=True)

    version: int = 1
    name: str
    address: str
    cluster_token: str
    initial_cluster: list[tuple[str, str]]  # (name, peer URL)
    cluster_state: str
    client_port: int
    peer_port: int


class Moving:
    """The cluster backend while the store moves from SQLite to etcd (a few seconds): nothing
    may write to SQLite any more, and etcd is not yet the store."""

    is_manager = True
    holds_store = True

    async def serve(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        raise Unavailable(MOVING)


MOVING_BACKEND = Moving()


def on_etcd(state_dir: Path) -> bool:
    return (state_dir / ETCD_FILE).exists()


def save_member(state_dir: Path, config: MemberConfig) -> None:
    """Write ``etcd.json`` atomically: from here on the node's store is on etcd."""
    data = MemberFile(
        name=config.name,
        address=config.address,
        cluster_token=config.cluster_token,
        initial_cluster=[(peer.name, peer.peer_url) for peer in config.initial_cluster],
        cluster_state=config.cluster_state.value,
        client_port=config.client_port,
        peer_port=config.peer_port,
    )
    path = state_dir / ETCD_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(data.model_dump_json(indent=2))
    temporary.replace(path)


def load_member(state_dir: Path) -> MemberConfig:
    from swarmlet.manager.etcd import ClusterState, MemberConfig, Peer  # manager only

    data = MemberFile.model_validate_json((state_dir / ETCD_FILE).read_text())
    return MemberConfig(
        name=data.name,
        state_dir=state_dir,
        address=data.address,
        cluster_token=data.cluster_token,
        initial_cluster=tuple(Peer(name, url) for name, url in data.initial_cluster),
        cluster_state=ClusterState(data.cluster_state),
        client_port=data.client_port,
        peer_port=data.peer_port,
    )


def discard_member_data(config: MemberConfig) -> None:
    """What an earlier, unfinished start of this member left (a move or a join that did not
    reach ``etcd.json``): its data and TLS go, so the member starts from nothing."""
    shutil.rmtree(config.data_dir, ignore_errors=True)
    shutil.rmtree(config.tls_dir, ignore_errors=True)


def keep_sqlite_files(state_dir: Path) -> None:
    """``store.db`` (and its WAL) renamed ``*.moved``, once its objects are in etcd."""
    for name in _SQLITE_FILES:
        path = state_dir / name
        if path.exists():
            path.replace(state_dir / (name + MOVED_SUFFIX))


def restore_unfinished_move(state_dir: Path) -> None:
    """A move that stopped after SQLite's files were renamed and before ``etcd.json`` was
    written did not happen: the files take their names back."""
    if on_etcd(state_dir) or (state_dir / STORE_FILE).exists():
        return
    for name in _SQLITE_FILES:
        moved = state_dir / (name + MOVED_SUFFIX)
        if moved.exists():
            moved.replace(state_dir / name)


def forget(state_dir: Path) -> None:
    """Leaving: the member's file, data, TLS and log, and SQLite's moved files."""
    from swarmlet.manager.etcd.config import DATA_FOLDER, LOG_FILE, TLS_FOLDER  # manager only

    (state_dir / ETCD_FILE).unlink(missing_ok=True)
    for folder in (DATA_FOLDER, TLS_FOLDER):
        shutil.rmtree(state_dir / folder, ignore_errors=True)
    (state_dir / LOG_FILE).unlink(missing_ok=True)
    for name in _SQLITE_FILES:
        (state_dir / (name + MOVED_SUFFIX)).unlink(missing_ok=True)


async def start_new_cluster(
    state_dir: Path, node_id: str, address: str, cluster: Cluster, clock: Clock
) -> Member:
    """The member of a new one-member cluster for the swarm's store to move into (token: the
    cluster's ID), from empty data, with a certificate from the cluster's root; healthy."""
    from swarmlet.manager.etcd import (  # manager only
        member_tls,
        new_cluster_member,
        write_member_tls,
    )

    config = new_cluster_member(node_id, state_dir, address, cluster.id)
    discard_member_data(config)
    tls = member_tls(
        cluster.root_ca,
        node_id=node_id,
        cluster_id=cluster.id,
        address=address,
        expiry=member_cert_expiry(cluster),
        now=clock.now(),
    )
    write_member_tls(config, tls)
    return await Member.start(config, clock)


async def copy_store(store: Store, member: Member, dek: bytes) -> int:
    """Every object of ``store`` (SQLite's, which nothing writes to any more) into the new
    member's etcd, sealed with ``dek``; returns how many (``move.move_store``)."""
    from swarmlet.manager.store.encryption import Cipher  # manager only
    from swarmlet.manager.store.etcd import EtcdBackend
    from swarmlet.manager.store.move import move_store

    await store.update(lambda tx: None)  # a write under way has landed (the store's lock)
    # A backend of the move's own: the store on etcd opens another.
    backend = EtcdBackend(member.client, Cipher(dek))
    return await move_store(store, member.client, backend)


def finish_move(state_dir: Path, config: MemberConfig) -> None:
    """Once SQLite is closed: its files kept as ``*.moved``, then ``etcd.json``, the move's
    commit point."""
    keep_sqlite_files(state_dir)
    save_member(state_dir, config)


async def force_new_cluster(config: MemberConfig, clock: Clock, dek: bytes) -> EtcdStore:
    """``docker swarm init --force-new-cluster`` on a manager on etcd whose member is stopped:
    the member started once with etcd's ``--force-new-cluster`` (``config.forced``) — from its
    own data, every other member removed, its keys kept — until it is healthy, then stopped;
    ``etcd.json`` rewritten to name it alone; the member started again as always and the store
    opened on it, where the managers that are members no more lose their manager status
    (``drop_lost_managers``). Raises Unavailable when the member has no data or does not
    start; ``etcd.json`` is then as it was."""
    from swarmlet.manager.etcd import Peer  # manager only
    from swarmlet.manager.etcd.config import forced

    if not config.data_dir.is_dir():
        raise Unavailable(f"the etcd member has no data in {config.data_dir}")
    alone = await Member.start(forced(config), clock)
    try:
        members = await alone.client.member_list()
    finally:
        await alone.stop()
    log.info("etcd forced a new cluster from this member's data: %d member(s)", len(members))
    single = replace(config, initial_cluster=(Peer(config.name, config.peer_url),))
    save_member(config.state_dir, single)
    etcd = await EtcdStore.open(single, clock, dek)
    try:
        await etcd.store.update(lambda tx: drop_lost_managers(tx, config.name))
    except BaseException:
        await etcd.close()
        raise
    return etcd


def drop_lost_managers(tx: Tx, node_id: str) -> int:
    """Every manager but ``node_id`` loses its manager status: after ``--force-new-cluster``
    they are no members of the cluster, and SwarmKit fills a node's ``ManagerStatus`` from the
    raft's members, so ``node ls`` shows them (Down) with no MANAGER STATUS, a demotion counts
    no quorum for them, and once demoted they can be removed. Returns how many."""
    lost = [n for n in tx.all(Node) if n.id != node_id and n.manager_status is not None]
    for node in lost:
        tx.update(node.replace(manager_status=None))
    return len(lost)


def member_cert_expiry(cluster: Cluster) -> timedelta:
    """A member's certificate lasts as long as a node's."""
    return timedelta(seconds=cluster.spec.ca_config.node_cert_expiry / SECOND_NS)


class Member:
    """A running member: its supervisor's task and a client of it."""

    def __init__(
        self,
        config: MemberConfig,
        supervisor: Supervisor,
        task: asyncio.Task[None],
        client: EtcdClient,
    ) -> None:
        self.config = config
        self._supervisor = supervisor
        self.task = task
        self.client = client

    @property
    def pid(self) -> int | None:
        """The etcd process's, while it runs."""
        return self._supervisor.pid

    @classmethod
    async def start(cls, config: MemberConfig, clock: Clock) -> Member:
        """Start the member and wait until it is healthy. Raises Unavailable when it does not
        start or is not healthy in time (it is stopped then)."""
        from swarmlet.manager.etcd import Supervisor, client_tls, wait_healthy  # manager only
        from swarmlet.manager.etcd.client import EtcdClient  # manager on etcd only

        supervisor = Supervisor(config, clock)
        # The member runs as long as this manager's store is on it: its task is the
        # daemon's (kept here, stopped by ``stop``); its death before then is logged by
        # the supervisor, which starts it again.
        task = asyncio.create_task(supervisor.run(), name=f"etcd-member-{config.name}")
        client = EtcdClient(config.client_url, client_tls(config))
        member = cls(config, supervisor, task, client)
        healthy = asyncio.ensure_future(wait_healthy(client, clock, HEALTHY_WITHIN_S))
        try:
            await asyncio.wait({healthy, task}, return_when=asyncio.FIRST_COMPLETED)
            if not healthy.done():
                healthy.cancel()
                task.result()  # raises what stopped the supervisor
                raise Unavailable("the etcd member stopped")
            healthy.result()
        except BaseException:
            healthy.cancel()
            await member.stop()
            raise
        return member

    async def stop(self) -> None:
        await self.client.close()
        await cancel_and_wait(self.task)


class EtcdStore:
    """A manager's store on etcd: the member, the store and the election on it."""

    def __init__(self, member: Member, store: Store, election: Election, dek: bytes) -> None:
        self.member = member
        self.store = store
        self.election = election
        # The store's key, which a joining manager is given.
        self.dek = dek

    @classmethod
    async def open(
        cls, config: MemberConfig, clock: Clock, dek: bytes, member: Member | None = None
    ) -> EtcdStore:
        """The store on ``member`` (started here when not given), sealed with ``dek``."""
        from swarmlet.manager.etcd.election import Election  # manager only
        from swarmlet.manager.store import Store
        from swarmlet.manager.store.encryption import Cipher
        from swarmlet.manager.store.etcd import EtcdBackend

        member = member or await Member.start(config, clock)
        try:
            store = await Store.open(EtcdBackend(member.client, Cipher(dek)), clock)
        except BaseException:
            await member.stop()
            raise
        return cls(member, store, Election(member.client, config.name, clock), dek)

    async def close(self) -> None:
        self.store.close()
        await self.member.stop()

    async def leave_cluster(self, clock: Clock) -> None:
        """This manager was demoted: the store closed, the member removed from the etcd
        cluster (through itself, while the others still count it; etcd refuses until the
        cluster is ready, as for an add: asked again), then stopped."""
        self.store.close()
        client, name = self.member.client, self.member.config.name
        deadline = clock.monotonic() + MEMBER_ADD_WITHIN_S
        while True:
            try:
                for member in await client.member_list():
                    if member.name == name:
                        await client.member_remove(member.id)
                break
            except Unavailable as exc:
                if clock.monotonic() >= deadline or NOT_READY not in exc.message:
                    log.warning("the etcd member could not remove itself: %s", exc.message)
                    break
                await clock.sleep(MEMBER_ADD_RETRY_S)
        await self.member.stop()

    async def add_member(
        self, node: Node, request: MemberRequest, clock: Clock, unlock_key: str
    ) -> MemberGrant:
        """Add ``node``'s member to the cluster as a learner, and sign its certificate.
        A joiner asking again is answered with the member it was added as, promoted to a
        voting member once etcd finds it caught up (``MemberGrant.voting``)."""
        from swarmlet.manager.etcd.join import MemberGrant, PeerModel  # manager only
        from swarmlet.manager.etcd.tls import member_certificate_for_csr

        cluster = self.store.cluster()
        if cluster is None:
            raise Unavailable("the swarm has no cluster object")
        address = _host_of(request.peer_url)
        members = await self.member.client.member_list()
        added = next((m for m in members if request.peer_url in m.peer_urls), None)
        if added is None:
            # A learner counts in no quorum until it is promoted: a joiner that never
            # starts its member (or dies before it caught up) cannot take the swarm's
            # quorum with it, as a voting member added to a cluster of one would.
            members = await self._member_add(request.peer_url, clock)
            voting = False
        else:
            voting = not added.learner or await self._promote(added)
        certificate, trust = member_certificate_for_csr(
            cluster.root_ca,
            request.csr,
            node_id=node.id,
            cluster_id=cluster.id,
            address=address,
            expiry=member_cert_expiry(cluster),
            now=clock.now(),
        )
        log.info("node %s joins etcd at %s", node.id, request.peer_url)
        return MemberGrant(
            initial_cluster=[
                PeerModel(name=peer.name, peer_url=peer.peer_url)
                for m in members
                for peer in m.peers()
            ],
            cluster_token=self.member.config.cluster_token,
            certificate=certificate,
            trust=trust,
            dek=base64.b64encode(self.dek).decode(),
            unlock_key=unlock_key,
            voting=voting,
        )

    async def _promote(self, learner: MemberInfo) -> bool:
        """Whether etcd made ``learner`` a voting member now; False while it is not started
        or not caught up (the joiner asks again)."""
        try:
            await self.member.client.member_promote(learner.id)
        except Unavailable as exc:
            log.info("etcd does not promote %s yet: %s", learner.peer_urls[0], exc.message)
            return False
        log.info("the etcd member at %s votes", learner.peer_urls[0])
        return True

    async def _member_add(self, peer_url: str, clock: Clock) -> list[MemberInfo]:
        deadline = clock.monotonic() + MEMBER_ADD_WITHIN_S
        while True:
            try:
                _, members = await self.member.client.member_add(peer_url, learner=True)
            except Unavailable as exc:
                if clock.monotonic() >= deadline:
                    raise
                log.info("etcd does not add %s yet (%s); again", peer_url, exc.message)
                await clock.sleep(MEMBER_ADD_RETRY_S)
                continue
            return members


def _host_of(peer_url: str) -> str:
    host = urlsplit(peer_url).hostname
    if not peer_url.startswith("https://") or not host:
        raise InvalidSpec(f"invalid peer URL for an etcd member: {peer_url!r}")
    return host


async def join_cluster(
    state_dir: Path,
    node_id: str,
    address: str,
    manager_addrs: list[str],
    credentials: Credentials,
    clock: Clock,
) -> tuple[EtcdStore, str]:
    """Join the swarm's etcd cluster through one of its managers (this node holds a manager
    certificate): the member's files written and the member started as a learner; once the
    managers answer that it votes, ``etcd.json`` written (last) and the store opened on it.
    Returns that and the unlock key (with autolock, else '')."""
    from swarmlet.manager.etcd import (  # manager only
        MemberTLS,
        joining_member,
        new_cluster_member,
        write_member_tls,
    )
    from swarmlet.manager.etcd.join import MemberRequest, request_membership, request_vote
    from swarmlet.manager.store.encryption import parse_unlock_key, write_key_file
    from swarmlet.pki.ca import new_key_and_csr
    from swarmlet.pki.tls import client_context

    # The member's own URL, as a new cluster's member would have it (the token is not known
    # yet, and not part of the URL).
    peer_url = new_cluster_member(node_id, state_dir, address, "").peer_url
    key, csr = await asyncio.to_thread(new_key_and_csr)
    tls = client_context(credentials.trust(), credentials)
    request = MemberRequest(peer_url=peer_url, csr=csr)
    grant = await request_membership(manager_addrs, request, tls, clock)
    config = joining_member(node_id, state_dir, address, grant.cluster_token, grant.peers())
    discard_member_data(config)
    write_member_tls(config, MemberTLS(grant.certificate, key, grant.trust))
    unlock_key = parse_unlock_key(grant.unlock_key) if grant.unlock_key else None
    write_key_file(state_dir / KEY_FILE, grant.data_key(), unlock_key)
    member = await Member.start(config, clock)  # healthy as a learner, serving no request
    try:
        if not grant.voting:
            await request_vote(manager_addrs, request, tls, clock)
        await until_serving(member.client, clock)
        save_member(state_dir, config)
        etcd = await EtcdStore.open(config, clock, grant.data_key(), member)
    except BaseException:
        await member.stop()
        raise
    return etcd, grant.unlock_key


async def until_serving(client: EtcdClient, clock: Clock) -> None:
    """Wait until a promoted member serves requests: a learner refuses them ("rpc not
    supported for learner") until it applies its promotion."""
    deadline = clock.monotonic() + HEALTHY_WITHIN_S
    while True:
        try:
            await client.member_list()
            return
        except Unavailable:
            if clock.monotonic() >= deadline:
                raise
            await clock.sleep(MEMBER_ADD_RETRY_S)
