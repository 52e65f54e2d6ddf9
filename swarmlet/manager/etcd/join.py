"""A manager joining the swarm's etcd cluster: the request on the manager's port (2377), and
what the joiner is given.

``POST /etcd/members {peer_url, csr}`` is admitted from a manager certificate of a node that
is a manager in the store (``forwarded.admit_manager``). The manager asked adds the joiner to
the etcd cluster as a learner (``member add``; asked again once the joiner's member runs, it
promotes it to a voting member: ``MemberGrant.voting``, ``request_vote``), signs the
certificate of its member for the CSR's key, and answers what the joiner's member needs: the
cluster as ``--initial-cluster`` names it, the cluster token, the certificate and the trust,
and the store's key (DEK), with the unlock key when the swarm is autolocked (the joiner
writes its own key file, sealed under it). All of it over mTLS, to a manager of the swarm.
A manager whose store is still on SQLite answers 503 while it moves the swarm to etcd (its
port's listener restarts): the joiner asks again.
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Sequence
from typing import Protocol

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from swarmlet.agent.certificates import post_to_manager
from swarmlet.clock import Clock
from swarmlet.errors import Unavailable
from swarmlet.manager.api.forwarded import admit_manager
from swarmlet.manager.ca.server import peer_of
from swarmlet.manager.etcd.config import Peer
from swarmlet.manager.store import Store
from swarmlet.models import Node

log = logging.getLogger(__name__)

MEMBERS_PATH = "/etcd/members"
TIMEOUT = aiohttp.ClientTimeout(total=60, connect=5)
# How long a joiner keeps asking while the managers answer 503 (a move to etcd, a cluster
# not ready for another member), and how long it waits between two asks.
JOIN_WITHIN_S = 180.0
RETRY_S = 1.0


class MemberRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    peer_url: str  # https://<joiner's address>:2380
    csr: str  # for the member's key, which stays on the joiner


class PeerModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # empty for the member being added
    peer_url: str


class MemberGrant(BaseModel):
    model_config = ConfigDict(frozen=True)

    initial_cluster: list[PeerModel]
    cluster_token: str
    certificate: str
    trust: str
    dek: str  # base64
    unlock_key: str = ""  # the swarm's unlock key with autolock, else ''
    # Whether the member votes: it is added as a learner, and promoted when a manager is
    # asked again once the member has started and caught up.
    voting: bool = True

    def peers(self) -> list[Peer]:
        return [Peer(p.name, p.peer_url) for p in self.initial_cluster]

    def data_key(self) -> bytes:
        return base64.b64decode(self.dek)


class Members(Protocol):
    async def add_member(self, node: Node, request: MemberRequest) -> MemberGrant:
        """Add ``node``'s member. Raises Unavailable (503) while the store moves to etcd or
        etcd is not ready for another member: the joiner asks again."""
        ...


def member_routes(store: Store, clock: Clock, members: Members) -> list[web.RouteDef]:
    async def add(request: web.Request) -> web.Response:
        node = admit_manager(store, clock, peer_of(request))
        body = MemberRequest.model_validate_json(await request.read())
        grant = await members.add_member(node, body)
        return web.json_response(text=grant.model_dump_json())

    return [web.post(MEMBERS_PATH, add)]


async def request_membership(
    addrs: Sequence[str],
    body: MemberRequest,
    tls: ssl.SSLContext,
    clock: Clock,
    within_s: float = JOIN_WITHIN_S,
) -> MemberGrant:
    """Ask the managers at ``addrs`` in turn until one adds this node's member; asks again
    after a 503 or no answer, for ``within_s``. Raises Forbidden or InvalidSpec at once."""
    deadline = clock.monotonic() + within_s
    while True:
        errors = []
        for addr in addrs:
            try:
                async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                    url = f"https://{addr}{MEMBERS_PATH}"
                    return await post_to_manager(http, url, body, tls, MemberGrant)
            except (aiohttp.ClientError, OSError, TimeoutError, Unavailable) as exc:
                errors.append(f"{addr}: {getattr(exc, 'message', None) or exc}")
        if clock.monotonic() >= deadline:
            raise Unavailable("no manager added this node to etcd: " + "; ".join(errors))
        log.info("joining etcd: %s; asking again", "; ".join(errors))
        await clock.sleep(RETRY_S)


async def request_vote(
    addrs: Sequence[str],
    body: MemberRequest,
    tls: ssl.SSLContext,
    clock: Clock,
    within_s: float = JOIN_WITHIN_S,
) -> MemberGrant:
    """Ask the managers again, once this node's member runs as a learner, until one answers
    that it votes (etcd promotes it once it has caught up with the leader's log)."""
    deadline = clock.monotonic() + within_s
    while True:
        left = max(deadline - clock.monotonic(), 0.0)
        grant = await request_membership(addrs, body, tls, clock, within_s=left)
        if grant.voting:
            return grant
        if clock.monotonic() >= deadline:
            raise Unavailable("this node's etcd member was not made a voting member in time")
        await clock.sleep(RETRY_S)
