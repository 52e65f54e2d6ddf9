"""How the agent's session moves between managers, on a fake clock: a refusal or a manager
that is down sends it to the next at once, a whole round of failures to a backoff, and the
managers the session is told replace the list it rotates through."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from swarmlet.agent.session import BACKOFF_MAX, LASTING_S, Session, next_manager
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock
from swarmlet.errors import Unavailable
from swarmlet.models import NodeDescription
from swarmlet.pki import Credentials
from swarmlet.protocol import StatusUpdate


def test_the_next_manager_is_the_following_one_in_a_ring() -> None:
    assert next_manager(["a", "b", "c"], "a") == "b"
    assert next_manager(["a", "b", "c"], "c") == "a"
    # The list changed under it: start again from its first.
    assert next_manager(["b", "c"], "a") == "b"


class ScriptedSession(Session):
    """A session whose managers behave as the test says, instead of over the network: each
    attempt is noted with the clock's time; ``open`` managers hold the session for
    ``lasting`` seconds (telling it ``told`` first, when set), the others refuse."""

    def __init__(self, managers: list[str], clock: FakeClock, tmp_path: Path) -> None:
        async def describe() -> NodeDescription:
            return NodeDescription()

        async def assign(tasks: object) -> None:
            return None

        def statuses() -> list[StatusUpdate]:
            return []

        self.learnt: list[list[str]] = []
        super().__init__(
            credentials=Credentials(tmp_path),
            manager_addrs=managers,
            addr="127.0.0.1",
            describe=describe,
            assign=assign,
            statuses=statuses,
            clock=clock,
            on_managers=self.learnt.append,
        )
        self.fake_clock = clock
        self.attempts: list[tuple[float, str]] = []
        self.open: set[str] = set()
        self.down: set[str] = set()
        self.lasting = LASTING_S
        self.told: list[str] = []

    async def _session(self, manager: str) -> None:
        self.attempts.append((round(self.fake_clock.monotonic(), 3), manager))
        if manager in self.down:
            raise aiohttp.ClientConnectionError(f"cannot connect to {manager}")
        if manager not in self.open:
            raise Unavailable(f"{manager} is not the leader")
        self._opened_at = self.fake_clock.monotonic()
        if self.told:
            self._learn_managers(self.told)
        await self.fake_clock.sleep(self.lasting)


async def run_for(session: ScriptedSession, clock: FakeClock, seconds: float) -> None:
    job = asyncio.create_task(session.run())
    for _ in range(round(seconds / 0.05)):
        await clock.advance(0.05)
    await cancel_and_wait(job)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_refused_and_down_managers_are_passed_at_once_then_the_round_backs_off(
    clock: FakeClock, tmp_path: Path
) -> None:
    session = ScriptedSession(["a", "b", "c"], clock, tmp_path)
    session.down = {"b"}
    await run_for(session, clock, 1.6)
    rounds = [(t, m) for t, m in session.attempts if m == "a"]
    # Each round tries all three at once; the pause between rounds doubles from 0.2 s.
    assert session.attempts[:6] == [
        (0, "a"),
        (0, "b"),
        (0, "c"),
        (0.2, "a"),
        (0.2, "b"),
        (0.2, "c"),
    ]
    assert [t for t, _ in rounds] == [0, 0.2, 0.6, 1.4]


async def test_a_lost_session_goes_to_the_next_manager_at_once(
    clock: FakeClock, tmp_path: Path
) -> None:
    session = ScriptedSession(["a", "b"], clock, tmp_path)
    session.open = {"a", "b"}
    session.lasting = 10
    await run_for(session, clock, 25)
    assert session.attempts == [(0, "a"), (10, "b"), (20, "a")]


async def test_a_session_that_ends_at_once_counts_as_a_failure(
    clock: FakeClock, tmp_path: Path
) -> None:
    # A manager that accepts and closes at once is not retried in a tight loop.
    session = ScriptedSession(["a"], clock, tmp_path)
    session.open = {"a"}
    session.lasting = 0
    await run_for(session, clock, 7)
    # The pause doubles up to BACKOFF_MAX (2 s).
    assert [t for t, _ in session.attempts] == [0, 0.2, 0.6, 1.4, 3.0, 3.0 + BACKOFF_MAX]


async def test_the_managers_it_is_told_are_the_ones_it_rotates_through(
    clock: FakeClock, tmp_path: Path
) -> None:
    session = ScriptedSession(["a"], clock, tmp_path)
    session.open = {"a", "c"}
    session.told = ["b", "c"]
    session.lasting = 10
    await run_for(session, clock, 15)
    assert session.managers == ["b", "c"]
    assert session.learnt == [["b", "c"]]
    # "a" is no longer one of them: after it, the list's first, refusing, then the next.
    assert session.attempts == [(0, "a"), (10, "b"), (10, "c")]
