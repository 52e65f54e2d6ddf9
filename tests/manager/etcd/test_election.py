"""Leadership through leases: on a fake etcd, driven by a fake clock, for the decisions; on a
real member for the protocol (the lease, the leader key and its transaction)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock, SystemClock
from swarmlet.errors import Unavailable
from swarmlet.manager.etcd import MemberConfig, client_tls
from swarmlet.manager.etcd.client import (
    Compare,
    Delete,
    EtcdClient,
    KeyValue,
    Put,
    RangeResult,
    TxnResult,
)
from swarmlet.manager.etcd.election import TTL_S, Election
from swarmlet.manager.leadership import Term
from swarmlet.pki.ca import new_root
from tests.etcd_fixtures import etcd_binary_or_skip, one_member


@dataclass
class FakeEtcd:
    """Keys and leases as etcd keeps them, enough for the election: leases expire when the
    fake clock passes their deadline, and take their keys with them."""

    clock: FakeClock
    revision: int = 1
    keys: dict[bytes, tuple[bytes, int, int]] = field(default_factory=dict)  # value, lease, rev
    leases: dict[int, float] = field(default_factory=dict)  # lease -> deadline
    ttls: dict[int, int] = field(default_factory=dict)
    down: bool = False

    def _expire(self) -> None:
        now = self.clock.monotonic()
        for lease, deadline in list(self.leases.items()):
            if deadline <= now:
                self._drop(lease)

    def _drop(self, lease: int) -> None:
        self.leases.pop(lease, None)
        gone = [key for key, (_, owner, _) in self.keys.items() if owner == lease]
        for key in gone:
            del self.keys[key]
        if gone:
            self.revision += 1

    def _check(self) -> None:
        if self.down:
            raise Unavailable("etcd at fake: unreachable")
        self._expire()


class FakeKeeper:
    """The client's lease keeper (``swarmlet.manager.etcd.keeper``) on the fake clock: a task
    that renews the lease every ``period``, as the keeper's thread does."""

    def __init__(self, etcd: FakeEtcd, lease: int, period: float) -> None:
        self.etcd = etcd
        self.renewed_at = etcd.clock.monotonic()
        self.expired = False
        self.error = ""
        self._task = asyncio.create_task(self._run(lease, period))

    async def _run(self, lease: int, period: float) -> None:
        while True:
            await self.etcd.clock.sleep(period)
            asked = self.etcd.clock.monotonic()
            try:
                self.etcd._check()
            except Unavailable as exc:
                self.error = exc.message
                continue
            if lease not in self.etcd.leases:
                self.expired = True
                return
            self.etcd.leases[lease] = asked + self.etcd.ttls[lease]
            self.renewed_at = asked

    def stop(self) -> None:
        self._task.cancel()


@dataclass
class FakeClient:
    etcd: FakeEtcd

    async def lease_grant(self, ttl: int) -> int:
        self.etcd._check()
        lease = len(self.etcd.ttls) + 1
        self.etcd.ttls[lease] = ttl
        self.etcd.leases[lease] = self.etcd.clock.monotonic() + ttl
        return lease

    def keep_alive(self, lease: int, period: float, *, within: float) -> FakeKeeper:
        return FakeKeeper(self.etcd, lease, period)

    async def lease_revoke(self, lease: int) -> None:
        self.etcd._check()
        self.etcd._drop(lease)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Put | Delete]) -> TxnResult:
        self.etcd._check()
        for compare in compares:
            assert compare.target == "CREATE"
            assert compare.revision == 0
            if compare.key in self.etcd.keys:
                return TxnResult(False, self.etcd.revision)
        self.etcd.revision += 1
        for op in success:
            assert isinstance(op, Put)
            self.etcd.keys[op.key] = (op.value, op.lease, self.etcd.revision)
        return TxnResult(True, self.etcd.revision)

    async def get(self, key: bytes) -> bytes | None:
        self.etcd._check()
        held = self.etcd.keys.get(key)
        return None if held is None else held[0]

    async def range(self, key: bytes, range_end: bytes | None = None) -> RangeResult:
        self.etcd._check()
        assert range_end is not None
        kvs = [
            KeyValue(k, v, rev, rev)
            for k, (v, _, rev) in sorted(self.etcd.keys.items())
            if key <= k < range_end
        ]
        return RangeResult(self.etcd.revision, kvs, False)


class Manager:
    """One manager's election, and a record of its terms."""

    def __init__(self, etcd: FakeEtcd, node_id: str) -> None:
        self.election = Election(FakeClient(etcd), node_id, etcd.clock)  # type: ignore[arg-type]
        self.terms: list[Term] = []
        self.leading = False
        self.task: asyncio.Task[None] | None = None

    async def lead(self, term: Term) -> None:
        self.terms.append(term)
        self.leading = True
        try:
            await asyncio.Event().wait()
        finally:
            self.leading = False

    def start(self) -> None:
        self.task = asyncio.create_task(self.election.run(self.lead))

    async def stop(self) -> None:
        assert self.task is not None
        await cancel_and_wait(self.task)


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float, step: float = 0.05) -> None:
    """Time passes in small steps, with every task run between them."""
    steps = round(seconds / step)
    for _ in range(steps):
        await clock.advance(step)
        await settle()


@pytest.fixture
def etcd() -> FakeEtcd:
    return FakeEtcd(FakeClock())


async def test_one_of_three_leads_and_every_one_is_reachable(etcd: FakeEtcd) -> None:
    managers = [Manager(etcd, f"m{i}") for i in range(3)]
    for manager in managers:
        manager.start()
    try:
        await advance(etcd.clock, 1.0)
        assert sum(manager.leading for manager in managers) == 1
        leader = next(manager for manager in managers if manager.leading)
        assert await managers[2].election.leader() == leader.election._node_id
        assert await managers[0].election.reachable() == {"m0", "m1", "m2"}
    finally:
        for manager in managers:
            await manager.stop()


async def test_a_dead_leaders_lease_runs_out_and_another_leads(etcd: FakeEtcd) -> None:
    first, second = Manager(etcd, "m1"), Manager(etcd, "m2")
    first.start()
    await advance(etcd.clock, 0.5)
    second.start()
    try:
        await advance(etcd.clock, 1.0)
        assert first.leading
        assert not second.leading
        # Killed: its lease is neither renewed nor revoked (its etcd is gone as it stops).
        etcd.down = True
        await first.stop()
        etcd.down = False
        await advance(etcd.clock, TTL_S - 0.5)
        assert not second.leading  # the lease still holds the key
        await advance(etcd.clock, 1.0)
        assert second.leading
        assert await second.election.reachable() == {"m2"}
        assert second.terms[0].revision > first.terms[0].revision
    finally:
        await second.stop()


async def test_a_stopped_leader_gives_its_lease_back_and_another_leads_at_once(
    etcd: FakeEtcd,
) -> None:
    first, second = Manager(etcd, "m1"), Manager(etcd, "m2")
    first.start()
    await advance(etcd.clock, 0.5)
    second.start()
    try:
        await advance(etcd.clock, 1.0)
        assert first.leading
        await first.stop()  # the daemon stops, or the manager is demoted
        assert await second.election.reachable() == {"m2"}
        await advance(etcd.clock, 0.5)  # one poll, well inside the lease's TTL
        assert second.leading
    finally:
        await second.stop()


async def test_a_leader_that_cannot_renew_stops_leading_before_its_lease_ends(
    etcd: FakeEtcd,
) -> None:
    manager = Manager(etcd, "m1")
    manager.start()
    try:
        await advance(etcd.clock, 0.5)
        assert manager.leading
        etcd.down = True
        renewed_until = max(etcd.leases.values())
        while manager.leading:
            await advance(etcd.clock, 0.05)
        # It stopped while etcd still held its lease: no other manager could lead yet.
        assert etcd.clock.monotonic() <= renewed_until
        etcd.down = False
        await advance(etcd.clock, TTL_S + 1.0)
        assert manager.leading
        assert len(manager.terms) == 2
    finally:
        await manager.stop()


async def test_a_leader_that_resigns_hands_over(etcd: FakeEtcd) -> None:
    first, second = Manager(etcd, "m1"), Manager(etcd, "m2")
    first.start()
    await advance(etcd.clock, 0.5)
    second.start()
    try:
        await advance(etcd.clock, 0.5)
        assert first.leading
        await first.election.resign()
        await advance(etcd.clock, 0.5)
        assert second.leading
        assert not first.leading
        assert await first.election.leader() == "m2"
    finally:
        await first.stop()
        await second.stop()


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemberConfig]:
    binary = etcd_binary_or_skip()
    with one_member(binary, new_root(datetime.now(UTC)), tmp_path_factory.mktemp("etcd")) as config:
        yield config


@pytest.fixture
async def etcd_client(member: MemberConfig) -> AsyncIterator[EtcdClient]:
    async with EtcdClient(member.client_url, client_tls(member)) as client:
        yield client


async def test_on_a_real_member_the_leader_key_lives_on_the_lease(etcd_client: EtcdClient) -> None:
    first = Election(etcd_client, "m1", SystemClock(), prefix=b"/test-election/")
    second = Election(etcd_client, "m2", SystemClock(), prefix=b"/test-election/")
    terms: dict[str, Term] = {}
    leading: dict[str, asyncio.Event] = {"m1": asyncio.Event(), "m2": asyncio.Event()}

    def lead_as(name: str) -> Callable[[Term], Coroutine[Any, Any, None]]:
        async def lead(term: Term) -> None:
            terms[name] = term
            leading[name].set()
            await asyncio.Event().wait()

        return lead

    one = asyncio.create_task(first.run(lead_as("m1")))
    await asyncio.wait_for(leading["m1"].wait(), 10)
    two = asyncio.create_task(second.run(lead_as("m2")))
    try:
        for _ in range(100):
            if await first.reachable() == {"m1", "m2"}:
                break
            await asyncio.sleep(0.1)
        assert await first.reachable() == {"m1", "m2"}
        assert await second.leader() == "m1"
        await cancel_and_wait(one)  # dies without revoking
        await asyncio.wait_for(leading["m2"].wait(), 10 * TTL_S)
        assert await second.leader() == "m2"
        assert terms["m2"].revision > terms["m1"].revision
        assert await second.reachable() == {"m2"}
    finally:
        await cancel_and_wait(one)
        await cancel_and_wait(two)


async def test_on_a_real_member_a_leader_whose_loop_is_busy_past_the_ttl_keeps_leading(
    etcd_client: EtcdClient,
) -> None:
    # A scheduler's pass over thousands of tasks holds the event loop for seconds: the lease
    # is renewed by a thread meanwhile, so the leader neither loses its key nor steps down.
    election = Election(etcd_client, "m1", SystemClock(), prefix=b"/test-busy/")
    terms: list[Term] = []
    leading = asyncio.Event()

    async def lead(term: Term) -> None:
        terms.append(term)
        leading.set()
        await asyncio.Event().wait()

    running = asyncio.create_task(election.run(lead))
    try:
        await asyncio.wait_for(leading.wait(), 10)
        time.sleep(TTL_S * 2)  # noqa: ASYNC251 (the loop is blocked: nothing else runs)
        await asyncio.sleep(TTL_S)  # the election looks at the lease again
        assert await election.leader() == "m1"
        assert len(terms) == 1
        assert await election.reachable() == {"m1"}
    finally:
        await cancel_and_wait(running)
