"""The agent's log publisher on a fake engine: this node's containers of a subscription, read
and sent in batches, then done; following, containers that start later too; cancelled by the
manager or by the session's end. And the engine's stream, demultiplexed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from swarmlet.agent.executor import LABEL_NODE_ID, LABEL_SERVICE_ID, LABEL_TASK_ID
from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.logframes import STDERR, STDOUT, Demuxer, LogFrame, parse_message
from swarmlet.agent.logs import LogPublisher
from swarmlet.agent.session import SessionClosed
from swarmlet.clock import FakeClock
from swarmlet.protocol import LogsBatch, LogsCancel, LogsDone, LogsSubscribe, Message


def header(stream: int, size: int) -> bytes:
    return bytes((stream, 0, 0, 0)) + size.to_bytes(4, "big")


def test_frames_are_read_whatever_the_chunks() -> None:
    stream = header(1, 6) + b"hello\n" + header(2, 4) + b"err\n" + header(1, 0)
    for size in (1, 3, 7, len(stream)):
        demuxer = Demuxer(raw=False)
        frames: list[LogFrame] = []
        for start in range(0, len(stream), size):
            frames += demuxer.feed(stream[start : start + size])
        assert frames == [
            LogFrame(STDOUT, b"hello\n"),
            LogFrame(STDERR, b"err\n"),
            LogFrame(1, b""),
        ]
        assert demuxer.end() == []


def test_a_tty_stream_is_lines_of_stdout() -> None:
    demuxer = Demuxer(raw=True)
    assert demuxer.feed(b"one\ntw") == [LogFrame(STDOUT, b"one\n")]
    assert demuxer.feed(b"o\n") == [LogFrame(STDOUT, b"two\n")]
    assert demuxer.feed(b"last") == []
    assert demuxer.end() == [LogFrame(STDOUT, b"last")]


def test_a_message_has_its_timestamp_attributes_and_text() -> None:
    message = parse_message(b"2026-01-02T03:04:05.000000001Z a%3Db=c+d,e=f x y\n")
    assert message.timestamp == "2026-01-02T03:04:05.000000001Z"
    assert message.attrs == (("a=b", "c d"), ("e", "f"))
    assert message.text == b"x y\n"
    # Without attributes, the engine leaves two spaces.
    assert parse_message(b"2026-01-02T03:04:05.000000001Z  hi\n").text == b"hi\n"


class Session:
    """What the publisher sends on, recorded; closed on demand."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.closed = False
        self.arrived = asyncio.Event()

    async def send(self, message: Message) -> None:
        if self.closed:
            raise SessionClosed("no session to the manager")
        self.sent.append(message)
        self.arrived.set()

    def lines(self) -> list[tuple[str, str, str]]:
        return [
            (e.task_id, e.stream, base64.b64decode(e.data).decode())
            for m in self.sent
            if isinstance(m, LogsBatch)
            for e in m.entries
        ]

    def done(self) -> list[LogsDone]:
        return [m for m in self.sent if isinstance(m, LogsDone)]


async def until(check: Callable[[], object], clock: FakeClock | None = None) -> None:
    for _ in range(200):
        if check():
            return
        if clock is not None:
            await clock.advance(0.5)
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


def task_container(engine: FakeEngine, task_id: str, node: str = "n1", service: str = "s1") -> str:
    labels = {LABEL_NODE_ID: node, LABEL_SERVICE_ID: service, LABEL_TASK_ID: task_id}
    engine.add_image("busybox")
    return engine.run_container(f"web.{task_id}", "busybox", labels).id


async def test_a_subscription_sends_this_nodes_containers_logs_then_done() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock)
    mine = task_container(engine, "t1")
    theirs = task_container(engine, "t2", node="n2")  # another node's (a shared engine)
    engine.write_log(mine, b"one\n")
    engine.write_log(mine, b"oops\n", STDERR)
    engine.write_log(mine, b"two\n")
    engine.write_log(theirs, b"not mine\n")
    session = Session()
    publisher = LogPublisher(engine, "n1", session.send, clock)

    publisher.handle(LogsSubscribe(id="a", service_ids=["s1"]))
    await until(session.done)
    assert session.lines() == [
        ("t1", "stdout", "one\n"),
        ("t1", "stderr", "oops\n"),
        ("t1", "stdout", "two\n"),
    ]
    assert session.done() == [LogsDone(id="a")]

    session.sent.clear()
    publisher.handle(LogsSubscribe(id="b", task_ids=["t1"], tail=1, stderr=False))
    await until(session.done)
    assert session.lines() == [("t1", "stdout", "two\n")]


async def test_following_picks_up_new_lines_and_new_containers_until_cancelled() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock)
    first = task_container(engine, "t1")
    engine.write_log(first, b"before\n")
    session = Session()
    publisher = LogPublisher(engine, "n1", session.send, clock)

    publisher.handle(LogsSubscribe(id="f", service_ids=["s1"], follow=True))
    await until(lambda: session.lines() == [("t1", "stdout", "before\n")])
    engine.write_log(first, b"after\n")
    await until(lambda: len(session.lines()) == 2)
    later = task_container(engine, "t3")
    engine.write_log(later, b"new task\n")
    await until(lambda: ("t3", "stdout", "new task\n") in session.lines(), clock)

    publisher.handle(LogsCancel(id="f"))
    await asyncio.sleep(0.05)
    count = len(session.lines())
    engine.write_log(first, b"unseen\n")
    await asyncio.sleep(0.05)
    assert len(session.lines()) == count
    assert session.done() == []  # following never says done


async def test_the_sessions_end_ends_its_subscriptions() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock)
    container = task_container(engine, "t1")
    session = Session()
    publisher = LogPublisher(engine, "n1", session.send, clock)
    publisher.handle(LogsSubscribe(id="f", service_ids=["s1"], follow=True))
    await asyncio.sleep(0.05)
    publisher.session_ended()
    await asyncio.sleep(0.05)
    engine.write_log(container, b"after the end\n")
    await asyncio.sleep(0.05)
    assert session.lines() == []


async def test_a_closed_session_stops_the_reading_quietly() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock)
    container = task_container(engine, "t1")
    engine.write_log(container, b"line\n")
    session = Session()
    session.closed = True
    publisher = LogPublisher(engine, "n1", session.send, clock)
    publisher.handle(LogsSubscribe(id="a", service_ids=["s1"]))
    await asyncio.sleep(0.05)
    assert session.sent == []


async def test_an_engine_error_is_reported_in_done() -> None:
    from swarmlet.errors import EngineError

    clock = FakeClock()
    engine = FakeEngine(clock)
    task_container(engine, "t1")
    engine.failures["container_logs"] = EngineError("the engine broke", 500)
    session = Session()
    publisher = LogPublisher(engine, "n1", session.send, clock)
    publisher.handle(LogsSubscribe(id="a", service_ids=["s1"]))
    await until(session.done)
    assert session.done() == [LogsDone(id="a", error="the engine broke")]
