"""The cluster backend of a manager on etcd: Swarm's lost quorum for every request that moby
sends through the raft leader.

SwarmKit's control API answers every call, reads included, through the raft leader; without
one, moby answers errNoLeader (503). A manager on etcd serves its API from its store's cache,
so ``LeaderRequired`` first asks etcd a linearizable read (the leader key's, through the
view), which etcd answers only through a leader of a majority of its members.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from swarmlet.api.backend import Endpoint
from swarmlet.errors import NO_LEADER, Unavailable
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.leadership import ManagerView
from swarmlet.manager.store import Store

# What a manager answers without a leader as it does with one: moby answers /info with the
# error inside it (``Swarm.Error``), lists the engine's networks when the swarm's cannot be
# read, and streams the engine's events.
ANSWERED_WITHOUT_LEADER = frozenset({Endpoint.INFO, Endpoint.NETWORK_LIST, Endpoint.EVENTS})
# An etcd without a leader may be electing one (its leader's member died: 1-2 s with etcd's
# 1 s election timeout): a request asks again for this long, as SwarmKit's LeaderConn waits
# for a raft leader (up to about 10 s) before it answers lost quorum.
ELECTION_S = 3.0
ASK_AGAIN_S = 0.2
# A member that has just lost its majority may hold a read until etcd's own timeout (7 s)
# rather than refuse it: each read is given up after LEADER_ASK_S and asked again (by then the
# member knows it has no leader, and refuses at once), and the whole check after
# LEADER_CHECK_S (the store's write bound).
LEADER_ASK_S = 1.0
LEADER_CHECK_S = 5.0


class LeaderRequired(LocalCluster):
    """``LocalCluster`` on etcd, whose ``view`` (the election) reads etcd: a request other
    than ``ANSWERED_WITHOUT_LEADER`` is answered only while etcd has a leader."""

    def __init__(self, store: Store, view: ManagerView) -> None:
        super().__init__(store, view)
        self.election = view

    async def serve(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        if endpoint not in ANSWERED_WITHOUT_LEADER:
            await require_leader(self.election)
        return await super().serve(endpoint, request)


async def require_leader(view: ManagerView) -> None:
    """Raise moby's errNoLeader, with etcd's reason after it, unless the view's leader can be
    read within ``ELECTION_S`` (a read held, within ``LEADER_CHECK_S``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            async with asyncio.timeout(min(LEADER_ASK_S, started + LEADER_CHECK_S - loop.time())):
                await view.leader()
            return
        except Unavailable as exc:
            if loop.time() - started >= ELECTION_S:
                raise Unavailable(f"{NO_LEADER} ({exc.message})") from exc
            await asyncio.sleep(ASK_AGAIN_S)
        except TimeoutError as exc:
            if loop.time() - started >= LEADER_CHECK_S:
                reason = f"etcd did not answer within {LEADER_CHECK_S:.1f} s"
                raise Unavailable(f"{NO_LEADER} ({reason})") from exc
