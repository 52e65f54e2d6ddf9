"""Which manager leads: an etcd lease per manager, and one leader key on it.

Each manager holds a lease it keeps alive, and on it a presence key
(``<prefix>managers/<node ID>``): the key exists while the manager reaches a majority of the
etcd members, which is what ``docker node ls`` shows as Reachable. The leader is the manager
whose lease holds ``<prefix>leader`` (its node ID), taken with a transaction that writes it
only if it does not exist: etcd's election recipe without the queue (every manager tries
again when the key goes, and one wins).

A leader that cannot keep its lease alive for the lease's TTL stops leading at once, before
etcd can have given the key to another: its lease has expired by then, or is about to. The
others see the key go when the lease expires (or is revoked: on resignation, and when its
manager stops) and campaign.
``TTL_S`` bounds how long the swarm is without a leader after one dies: the lease's TTL, plus
etcd's own election when the dead manager's member led etcd (etcd then extends every lease
by its election timeout).
"""

from __future__ import annotations

import asyncio
import logging

from swarmlet.clock import Clock
from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.client import Compare, EtcdClient, Put, prefix_end
from swarmlet.manager.leadership import Lead, Term

log = logging.getLogger(__name__)

# The lease's time to live: how long the swarm may be without a leader after one dies (Swarm's
# election takes about 10 s). etcd refuses less than 1.5 election timeouts (1.5 s with its
# defaults). It was 2 s: on a machine whose CPUs are all taken (three managers, their etcd
# members and 1,000 simulated nodes on two vCPUs, benchmarks/scale_managers.py) a renewal
# then missed its deadline often enough to pass the leadership from manager to manager.
TTL_S = 5
# Keepalives per TTL: one lost keepalive still leaves two chances.
KEEPALIVES_PER_TTL = 4
# How often a follower looks at the leader key (a linearizable read).
POLL_S = 0.25
RETRY_S = 0.5
# How long a stopping manager tries to give its lease back.
REVOKE_WITHIN_S = 1.0


class LeaseLost(Unavailable):
    """The manager's lease could not be kept alive: it leads no more."""


class Election:
    def __init__(
        self,
        client: EtcdClient,
        node_id: str,
        clock: Clock,
        *,
        prefix: bytes = b"/swarmlet/",
        ttl: int = TTL_S,
    ) -> None:
        self._client = client
        self._node_id = node_id
        self._clock = clock
        self._ttl = ttl
        self.leader_key = prefix + b"leader"
        self.managers_prefix = prefix + b"managers/"
        self._resigning = asyncio.Event()

    async def run(self, lead: Lead) -> None:
        """Campaign for as long as this runs; while leader, run ``lead(term)``, cancelled the
        moment the lease cannot be kept (or on ``resign``). Never returns on its own."""
        while True:
            lease = 0
            try:
                try:
                    lease = await self._client.lease_grant(self._ttl)
                    presence = self.managers_prefix + self._node_id.encode()
                    await self._client.txn([], [Put(presence, b"", lease=lease)])
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._keep_alive(lease), name="etcd-lease")
                        group.create_task(self._campaign(lease, lead), name="etcd-campaign")
                except* Unavailable as errors:
                    log.info("election: %s; campaigning again", errors.exceptions[0])
            except asyncio.CancelledError:
                # Stopped (the daemon stops, the manager is demoted or leaves): the lease
                # goes now rather than at its expiry, so another manager leads at once.
                await self._revoke_quietly(lease)
                raise
            self._resigning.clear()
            await self._clock.sleep(RETRY_S)

    async def _revoke_quietly(self, lease: int) -> None:
        if not lease:
            return
        try:
            async with asyncio.timeout(REVOKE_WITHIN_S):
                await self._client.lease_revoke(lease)
        except (Unavailable, TimeoutError):
            log.info("election: the lease could not be revoked; it expires on its own")

    async def resign(self) -> None:
        """Give up leading: the lease is revoked (its keys go with it) and a new one taken
        after, so another manager takes the key first."""
        self._resigning.set()

    async def leader(self) -> str | None:
        """The leader's node ID, or None while there is none."""
        value = await self._client.get(self.leader_key)
        return value.decode() if value else None

    async def reachable(self) -> set[str]:
        """The managers whose lease is alive."""
        found = await self._client.range(self.managers_prefix, prefix_end(self.managers_prefix))
        return {kv.key[len(self.managers_prefix) :].decode() for kv in found.kvs}

    async def _campaign(self, lease: int, lead: Lead) -> None:
        while True:
            mine = Put(self.leader_key, self._node_id.encode(), lease=lease)
            result = await self._client.txn([Compare.absent(self.leader_key)], [mine])
            if result.succeeded:
                term = Term(self._node_id, lease, result.revision)
                log.info("election: this manager leads (revision %d)", result.revision)
                try:
                    await self._lead_until_resigned(term, lead)
                finally:
                    log.info("election: this manager no longer leads")
                await self._client.lease_revoke(lease)
                raise LeaseLost("resigned")
            await self._until_no_leader()

    async def _lead_until_resigned(self, term: Term, lead: Lead) -> None:
        leading = asyncio.create_task(lead(term), name="leading")
        resigned = asyncio.create_task(self._resigning.wait(), name="resigned")
        try:
            await asyncio.wait({leading, resigned}, return_when=asyncio.FIRST_COMPLETED)
            if leading.done():
                leading.result()  # what it raised ends the term
                raise LeaseLost("the leader's work ended")
        finally:
            for task in (leading, resigned):
                task.cancel()
            await asyncio.wait({leading, resigned})

    async def _until_no_leader(self) -> None:
        while await self._client.get(self.leader_key) is not None:
            if self._resigning.is_set():
                return
            await self._clock.sleep(POLL_S)

    async def _keep_alive(self, lease: int) -> None:
        """Have the lease renewed several times per TTL (by a thread: ``keeper``); raise
        LeaseLost once it may have expired."""
        period = self._ttl / KEEPALIVES_PER_TTL
        # A renewal may take until the lease would have run out without it.
        keeper = self._client.keep_alive(lease, period, within=self._ttl - period)
        try:
            while True:
                await self._clock.sleep(period)
                if keeper.expired:
                    raise LeaseLost("the lease expired")
                # The lease runs from about when its last granted renewal was asked for: this
                # errs towards stepping down early, never late.
                if self._clock.monotonic() - keeper.renewed_at + period >= self._ttl:
                    raise LeaseLost(f"the lease could not be renewed: {keeper.error}")
        finally:
            keeper.stop()
