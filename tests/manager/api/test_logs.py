"""GET /services/{id}/logs and /tasks/{id}/logs: the query checked as moby checks it, the
stream written as moby writes it, and the stock CLI's `docker service logs` reading it.

The nodes' agents are scripted: each answers a subscription, on the log broker of the store
the API serves, with the lines of its tasks (see ``Agent``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec
from swarmlet.manager.api.logs import attrs_text, frame, parse_since, parse_tail
from swarmlet.manager.dispatcher.logs import LogBroker, broker_for
from swarmlet.manager.store import Store
from swarmlet.models import Node, Service, Task
from swarmlet.protocol import LogEntry, LogsBatch, LogsCancel, LogsDone, LogsSubscribe, Message
from tests.manager.api.fakes import add_node, add_service, add_task

STAMP = "2026-01-02T03:04:05.123456789Z"


class Agent:
    """A node's session as the broker sees it: it answers each subscription with the lines
    of the node's selected tasks (``lines``), then done unless following."""

    def __init__(self, broker: LogBroker, node: Node, store: Store) -> None:
        self.broker, self.node, self.store = broker, node, store
        self.lines: dict[str, list[tuple[str, bytes]]] = {}
        self.cancelled: list[str] = []

    def send(self, message: Message) -> None:
        if isinstance(message, LogsSubscribe):
            asyncio.get_running_loop().call_soon(self._answer, message)
        elif isinstance(message, LogsCancel):
            self.cancelled.append(message.id)

    def _answer(self, subscription: LogsSubscribe) -> None:
        entries = []
        for task in self.store.tasks_of_node(self.node.id):
            if task.service_id in subscription.service_ids or task.id in subscription.task_ids:
                lines = self.lines.get(task.id, [])
                if subscription.tail is not None:
                    lines = lines[len(lines) - subscription.tail :] if subscription.tail else []
                entries += [
                    LogEntry(
                        task_id=task.id,
                        service_id=task.service_id,
                        stream=stream,  # type: ignore[arg-type]
                        timestamp=STAMP,
                        attrs=[("env", "a b")] if stream == "stderr" else [],
                        data=base64.b64encode(data).decode(),
                    )
                    for stream, data in lines
                    if (stream == "stdout" and subscription.stdout)
                    or (stream == "stderr" and subscription.stderr)
                ]
        self.broker.received(self.node.id, LogsBatch(id=subscription.id, entries=entries))
        if not subscription.follow:
            self.broker.received(self.node.id, LogsDone(id=subscription.id))


class World:
    def __init__(
        self, store: Store, clock: Clock, nodes: list[Node], service: Service, tasks: list[Task]
    ) -> None:
        self.store = store
        self.broker = broker_for(store, clock)
        self.nodes = nodes
        self.service = service
        self.tasks = tasks
        self.agents = [Agent(self.broker, node, store) for node in self.nodes]
        for agent in self.agents:
            self.broker.connected(agent.node.id, agent)
        self.agents[0].lines[self.tasks[0].id] = [("stdout", b"one\n"), ("stderr", b"oops\n")]
        self.agents[1].lines[self.tasks[1].id] = [("stdout", b"two\n")]


@pytest.fixture
async def world(store: Store, clock: Clock, control: object) -> AsyncIterator[World]:
    nodes = [await add_node(store, f"node-{n}") for n in (1, 2)]
    service = await add_service(store, "web", replicas=10)
    tasks = [await add_task(store, service, node, slot=n + 1) for n, node in enumerate(nodes)]
    world = World(store, clock, nodes, service, tasks)
    yield world
    for agent in world.agents:
        world.broker.disconnected(agent.node.id, agent)


def frames(body: bytes) -> list[tuple[int, bytes]]:
    found = []
    while body:
        size = int.from_bytes(body[4:8], "big")
        found.append((body[0], body[8 : 8 + size]))
        body = body[8 + size :]
    return found


def context(world: World, n: int) -> str:
    return (
        f"com.docker.swarm.node.id={world.nodes[n].id},"
        f"com.docker.swarm.service.id={world.service.id},"
        f"com.docker.swarm.task.id={world.tasks[n].id}"
    )


# The pure parts


def test_tail_and_since_are_read_as_moby_reads_them() -> None:
    assert parse_tail("all") is parse_tail("") is None
    assert parse_tail("3") == 3
    assert parse_tail("+0") == 0
    with pytest.raises(InvalidSpec, match='tail value must be a positive integer or "all"'):
        parse_tail("3 ")
    with pytest.raises(InvalidSpec, match="negative tail values not supported"):
        parse_tail("-1")
    assert parse_since("") == ""
    assert parse_since("1700000000") == "1700000000"
    assert parse_since("1700000000.5") == "1700000000.500000000"
    assert parse_since("1700000000.000000001") == "1700000000.000000001"
    with pytest.raises(InvalidSpec) as refused:
        parse_since("x")
    assert refused.value.message == (
        'could not parse since timestamp: strconv.ParseInt: parsing "x": invalid syntax'
    )


def test_attributes_are_sorted_and_query_escaped() -> None:
    assert attrs_text([("z", "1"), ("a b", "c=d,e")]) == b"a+b=c%3Dd%2Ce,z=1"
    assert attrs_text([]) == b""
    assert frame(2, b"hi\n") == b"\x02\x00\x00\x00\x00\x00\x00\x03hi\n"


# The API


async def test_a_service_logs_are_multiplexed_with_their_context(
    client: TestClient, world: World
) -> None:
    response = await client.get("/v1.47/services/web/logs?stdout=1&stderr=1&details=1")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
    got = sorted(frames(await response.read()))
    assert got == sorted(
        [
            (1, f"{context(world, 0)} one\n".encode()),
            # Sorted by key: the log driver's attributes among the context's.
            (2, f"{context(world, 0)},env=a+b oops\n".encode()),
            (1, f"{context(world, 1)} two\n".encode()),
        ]
    )


async def test_timestamps_come_first_and_streams_can_be_chosen(
    client: TestClient, world: World
) -> None:
    task = world.tasks[0]
    response = await client.get(f"/tasks/{task.id}/logs?stdout=1&timestamps=1")
    assert frames(await response.read()) == [(1, f"{STAMP} one\n".encode())]
    # Before API 1.42, the same stream is called raw.
    response = await client.get(f"/v1.41/tasks/{task.id[:8]}/logs?stderr=1")
    assert response.headers["Content-Type"] == "application/vnd.docker.raw-stream"
    assert frames(await response.read()) == [(2, b"oops\n")]


async def test_a_tty_service_is_written_raw(client: TestClient, store: Store, world: World) -> None:
    spec = world.service.spec
    template = spec.task_template
    tty = template.replace(container_spec=template.container_spec.replace(tty=True))
    from swarmlet.manager.store import Op

    await store.commit([Op.update(world.service.replace(spec=spec.replace(task_template=tty)))])
    response = await client.get("/services/web/logs?stdout=1&stderr=1")
    assert response.headers["Content-Type"] == "application/vnd.docker.raw-stream"
    assert sorted((await response.read()).splitlines()) == [b"one", b"oops", b"two"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "must specify at least one of 'stdout' or 'stderr'"),
        ("stdout=1&tail=-2", 400, "negative tail values not supported"),
        ("stdout=1&tail=x", 400, 'tail value must be a positive integer or "all"'),
        (
            "stdout=1&since=1.x",
            400,
            'could not parse since timestamp: strconv.ParseInt: parsing "x": invalid syntax',
        ),
    ],
)
async def test_a_bad_query_is_refused(
    client: TestClient, world: World, query: str, status: int, message: str
) -> None:
    response = await client.get(f"/services/web/logs?{query}")
    assert (response.status, (await response.json())["message"]) == (status, message)


async def test_an_unknown_service_or_task_is_a_404(client: TestClient, world: World) -> None:
    response = await client.get("/services/nope/logs?stdout=1")
    assert (response.status, (await response.json())["message"]) == (404, "service nope not found")
    response = await client.get("/tasks/nope/logs?stdout=1")
    assert (response.status, (await response.json())["message"]) == (404, "task nope not found")


async def test_a_node_that_is_gone_ends_the_stream_with_swarms_error(
    client: TestClient, world: World
) -> None:
    gone = world.agents[1]
    world.broker.disconnected(gone.node.id, gone)
    response = await client.get("/services/web/logs?stdout=1")
    got = frames(await response.read())
    assert got[:-1] == [(1, b"one\n")]
    assert got[-1] == (
        3,
        b"Error grabbing logs: rpc error: code = Unknown desc = warning: incomplete log stream."
        b" some logs could not be retrieved for the following reasons: node "
        + gone.node.id.encode()
        + b" is not available\n",
    )


async def test_following_streams_until_the_client_goes_and_then_cancels(
    client: TestClient, world: World
) -> None:
    response = await client.get("/services/web/logs?stdout=1&follow=1")
    assert response.status == 200
    got = b""
    while got.count(b"\n") < 2:
        got += await asyncio.wait_for(response.content.readany(), 5)
    # A task that starts later, on a node not asked yet, is followed too.
    third = await add_node(world.store, "node-3")
    agent = Agent(world.broker, third, world.store)
    agent.lines["t-late"] = [("stdout", b"late\n")]
    world.broker.connected(third.id, agent)
    late = await add_task(world.store, world.service, third, slot=3)
    agent.lines[late.id] = [("stdout", b"late\n")]
    while b"late" not in got:
        got += await asyncio.wait_for(response.content.readany(), 5)
    response.close()
    for _ in range(50):
        if all(agent.cancelled for agent in [*world.agents, agent]):
            break
        await asyncio.sleep(0.1)
    assert all(agent.cancelled for agent in [*world.agents, agent])


# The stock CLI


async def test_docker_service_logs_prints_swarms_prefixes(cli, served, world: World) -> None:
    one, two = world.tasks
    out = await cli(served, "service", "logs", "web")
    # Ten replicas: one space after a one-digit slot's node name.
    assert sorted(out.splitlines()) == [
        f"web.1.{one.id[:12]}@node-1     | one",
        f"web.2.{two.id[:12]}@node-2     | two",
    ]
    out = await cli(served, "service", "logs", "--no-task-ids", "--details", "web")
    assert sorted(out.splitlines()) == ["web.1@node-1     |  one", "web.2@node-2     |  two"]
    out = await cli(served, "service", "logs", "--no-trunc", "--no-resolve", "-t", one.id)
    node, service = world.nodes[0].id, world.service.id
    assert out.splitlines() == [f"{STAMP} {service}.1.{one.id}@{node}    | one"]
    # The last line of task 1 is on stderr.
    out = await cli(served, "service", "logs", "--raw", "--tail", "1", "web")
    assert out.splitlines() == ["two"]


async def test_docker_service_logs_reports_stderr_and_a_missing_service(
    docker, served, world: World
) -> None:
    code, _, err = await docker(served, "service", "logs", "--details", "web")
    assert code == 0
    assert err.splitlines() == [f"web.1.{world.tasks[0].id[:12]}@node-1     | env=a b oops"]
    code, _, err = await docker(served, "service", "logs", "nope")
    assert (code, err.strip()) == (1, "no such task or service: nope")
