"""The dispatcher and the leader's terms, on the in-memory store with a fake clock: sessions
end with the term, agents are told the swarm's managers, and a new term gives every node a
full grace."""

from __future__ import annotations

import asyncio

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.dispatcher import Dispatcher, decide
from swarmlet.manager.dispatcher.dispatcher import TERM_ENDED
from swarmlet.manager.store import MemoryBackend, Op, Store
from swarmlet.models import (
    Cluster,
    ManagerStatus,
    Node,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
)
from swarmlet.protocol import Managers, Register
from tests.manager.dispatcher.fakes import FakeConnection

HELLO = Register(description=NodeDescription(hostname="node"), addr="192.168.254.12")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock) -> Store:
    store = Store(MemoryBackend(), clock)
    await store.commit([Op.create(Cluster(id="c1"))])
    return store


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def manager(node_id: str, addr: str) -> Node:
    return Node(
        id=node_id,
        spec=NodeSpec(role=NodeRole.MANAGER),
        status=NodeStatus(state=NodeState.READY),
        manager_status=ManagerStatus(addr=addr),
    )


def worker(node_id: str) -> Node:
    return Node(id=node_id, status=NodeStatus(state=NodeState.UNKNOWN))


def told(connection: FakeConnection) -> list[list[str]]:
    return [m.addrs for m in connection.sent if isinstance(m, Managers)]


def test_the_managers_are_every_manager_nodes_known_address() -> None:
    nodes = [
        manager("m2", "10.0.0.2:2377"),
        worker("w1"),
        manager("m1", "10.0.0.1:2377"),
        # A manager whose agent has not registered yet: no address to give.
        manager("m3", ""),
    ]
    assert decide.manager_addrs(nodes) == ["10.0.0.1:2377", "10.0.0.2:2377"]


async def test_sessions_end_with_the_term(store: Store, clock: FakeClock) -> None:
    dispatcher = Dispatcher(store, clock)
    await store.commit([Op.create(worker("w1")), Op.create(worker("w2"))])
    assert not dispatcher.leading
    term = asyncio.create_task(dispatcher.run())
    await settle()
    assert dispatcher.leading
    connections = {node_id: FakeConnection() for node_id in ("w1", "w2")}
    for node_id, connection in connections.items():
        await dispatcher.register(node_id, HELLO)
        dispatcher.attach(node_id, connection)
    term.cancel()
    with pytest.raises(asyncio.CancelledError):
        await term
    assert not dispatcher.leading
    assert [(c.closed, c.reason) for c in connections.values()] == [(True, TERM_ENDED)] * 2
    # The next term pushes to no one until agents open new sessions.
    again = asyncio.create_task(dispatcher.run())
    await settle()
    assert all(len(c.sent) == len(connections["w1"].sent) for c in connections.values())
    again.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again


async def test_agents_are_told_the_managers_at_once_and_on_every_change(
    store: Store, clock: FakeClock
) -> None:
    await store.commit([Op.create(manager("m1", "10.0.0.1:2377")), Op.create(worker("w1"))])
    dispatcher = Dispatcher(store, clock)
    term = asyncio.create_task(dispatcher.run())
    await settle()
    await dispatcher.register("w1", HELLO)
    connection = FakeConnection()
    dispatcher.attach("w1", connection)
    assert told(connection) == [["10.0.0.1:2377"]]

    # A manager joins without an address yet: nothing to tell; its agent registers: told.
    await store.commit([Op.create(manager("m2", "").replace(status=NodeStatus()))])
    await settle()
    assert told(connection) == [["10.0.0.1:2377"]]
    await dispatcher.register("m2", HELLO)
    await settle()
    assert store.get(Node, "m2").manager_status == ManagerStatus(addr="192.168.254.12:2377")
    assert told(connection)[-1] == ["10.0.0.1:2377", "192.168.254.12:2377"]

    # Other changes of nodes tell nothing new.
    await dispatcher.register("w1", HELLO.model_copy(update={"addr": "192.168.254.13"}))
    await settle()
    assert len(told(connection)) == 2

    # A demoted manager, a removed one: told each time.
    m1 = store.get(Node, "m1")
    await store.commit([Op.update(m1.replace(manager_status=None))])
    await settle()
    assert told(connection)[-1] == ["192.168.254.12:2377"]
    await store.commit([Op.create(manager("m3", "10.0.0.3:2377"))])
    await settle()
    await store.commit([Op.delete(store.get(Node, "m3"))])
    await settle()
    assert told(connection)[-2:] == [
        ["10.0.0.3:2377", "192.168.254.12:2377"],
        ["192.168.254.12:2377"],
    ]
    term.cancel()
    with pytest.raises(asyncio.CancelledError):
        await term


async def test_a_new_term_gives_every_node_a_full_grace(store: Store, clock: FakeClock) -> None:
    # A manager that has followed for a long while becomes leader: the agents were on the
    # last leader, and need time to find this one, however old its own view of them.
    await store.commit([Op.create(worker("w1"))])
    dispatcher = Dispatcher(store, clock)
    await dispatcher.register("w1", HELLO)
    await clock.advance(3600)
    term = asyncio.create_task(dispatcher.run())
    await settle()
    await clock.advance(14.9)
    assert store.get(Node, "w1").status.state == NodeState.READY
    await clock.advance(0.2)
    assert store.get(Node, "w1").status.state == NodeState.DOWN
    term.cancel()
    with pytest.raises(asyncio.CancelledError):
        await term
