"""Two managers over one store, on loopback with real TLS: only the leader opens sessions, the
agents learn every manager, and an agent follows the leadership without restarting a task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from swarmlet.agent import certificates
from swarmlet.agent.attachments import list_attachments
from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.session import Session
from swarmlet.agent.worker import Worker
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock, SystemClock
from swarmlet.manager.dispatcher import AgentConnection, Dispatcher
from swarmlet.manager.store import Op, Store
from swarmlet.models import (
    ContainerSpec,
    Node,
    NodeDescription,
    NodeRole,
    NodeState,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.pki import Credentials
from swarmlet.pki.tls import client_context
from swarmlet.protocol import Register, Registered, StatusUpdate
from tests.manager.dispatcher.loopback import (
    FakeWorker,
    Manager,
    eventually,
    free_port,
    stop,
)
from tests.manager.dispatcher.two_managers import Port, set_manager_addr, two_ports
from tests.tls_probe import open_session


async def join(manager: Manager, addr: str, credentials: Credentials) -> str:
    """A worker joins through the manager at ``addr``: its node's ID."""
    return await certificates.join([addr], manager.cluster.join_tokens.worker, credentials)


def agent_session(
    addrs: list[str],
    credentials: Credentials,
    worker: Worker | FakeWorker,
    on_managers: Callable[[list[str]], None] | None = None,
) -> Session:
    """The session of the node whose certificate is in ``credentials``, knowing ``addrs``."""

    async def describe() -> NodeDescription:
        return NodeDescription(hostname=credentials.folder.name)

    return Session(
        credentials=credentials,
        manager_addrs=addrs,
        addr="127.0.0.1",
        describe=describe,
        assign=worker.assign,
        statuses=worker.statuses,
        clock=SystemClock(),
        on_managers=on_managers,
    )


@pytest.fixture
async def ports(tmp_path: Path) -> AsyncIterator[tuple[Manager, Port, Port]]:
    manager, first, second = await two_ports(tmp_path)
    yield manager, first, second
    await first.stop()
    await second.stop()


async def test_only_the_leader_opens_sessions_every_manager_joins_and_attaches(
    ports: tuple[Manager, Port, Port], tmp_path: Path
) -> None:
    manager, leader, other = ports
    leader.lead()
    # A node joins through the manager that does not lead: the CA writes through the store.
    credentials = Credentials(tmp_path / "n2")
    node_id = await join(manager, other.addr, credentials)
    assert manager.store.get(Node, node_id).spec.role is NodeRole.WORKER
    tls = client_context(credentials.trust(), credentials)
    assert await open_session(other.addr, tls) == 503
    assert await open_session(leader.addr, tls) == 101
    # Its attachments are answered by either.
    assert await list_attachments(credentials, [other.addr]) == []
    # The leadership moves: the roles swap.
    await leader.step_down()
    other.lead()
    assert await open_session(leader.addr, tls) == 503
    assert await open_session(other.addr, tls) == 101


async def test_an_agent_learns_the_managers_and_each_change(
    ports: tuple[Manager, Port, Port], tmp_path: Path
) -> None:
    manager, leader, other = ports
    leader.lead()
    credentials = Credentials(tmp_path / "n2")
    node_id = await join(manager, leader.addr, credentials)
    told: list[list[str]] = []
    # It knows only the manager that does not lead: refused, it goes on through the list it
    # is given at register.
    worker = FakeWorker()
    session = agent_session([other.addr, leader.addr], credentials, worker, told.append)
    running = asyncio.create_task(session.run())
    try:
        await eventually(lambda: session.manager == leader.addr)
        both = sorted([leader.addr, other.addr])
        await eventually(lambda: session.managers == both)
        # A third manager is promoted: told; demoted: told again.
        third = f"127.0.0.1:{free_port()}"
        await set_manager_addr(manager.store, node_id, third)
        await eventually(lambda: session.managers == sorted([*both, third]))
        node = manager.store.get(Node, "m2")
        await manager.store.commit([Op.update(node.replace(manager_status=None))])
        await eventually(lambda: session.managers == sorted([leader.addr, third]))
        learnt = [both] if [other.addr, leader.addr] != both else []  # as given, or sorted
        assert told == [*learnt, sorted([*both, third]), sorted([leader.addr, third])]
    finally:
        await stop(running)


def busybox(task_id: str, node_id: str, slot: int) -> Task:
    return Task(
        id=task_id,
        name=f"web.{slot}",
        service_id="web-id",
        service_name="web",
        slot=slot,
        node_id=node_id,
        spec=TaskSpec(container_spec=ContainerSpec(image="busybox")),
        status=TaskStatus(state=TaskState.ASSIGNED),
        desired_state=TaskState.RUNNING,
    )


async def test_an_agent_follows_the_leader_and_keeps_its_tasks_running(
    ports: tuple[Manager, Port, Port], tmp_path: Path
) -> None:
    manager, first, second = ports
    store = manager.store
    first.lead()
    credentials = Credentials(tmp_path / "n2")
    node_id = await join(manager, first.addr, credentials)
    clock = SystemClock()
    engine = FakeEngine(clock)
    engine.add_image("busybox")
    sessions: list[Session] = []

    async def report(updates: list[StatusUpdate]) -> None:
        await sessions[0].report(updates)

    worker = Worker(engine, node_id, report, clock)
    # The agent starts knowing only the first manager.
    session = agent_session([first.addr], credentials, worker)
    sessions.append(session)
    jobs = [asyncio.create_task(worker.run()), asyncio.create_task(session.run())]
    try:
        await eventually(lambda: session.manager == first.addr)
        await store.commit(
            [Op.create(busybox("t1", node_id, 1)), Op.create(busybox("t2", node_id, 2))]
        )

        def states() -> list[TaskState]:
            return [store.get(Task, t).status.state for t in ("t1", "t2")]

        await eventually(lambda: states() == [TaskState.RUNNING] * 2)
        await eventually(lambda: len(session.managers) == 2)
        containers = set(engine.containers)
        t1 = engine.container("web.1.t1")
        pid = t1.pid

        # The first manager's term ends: its session is closed, and no manager leads a while.
        await first.step_down()
        await eventually(lambda: session.manager is None)
        # Meanwhile the second task's container exits: reported once a manager is back.
        engine.exit("web.2.t2", 1)
        await eventually(
            lambda: {u.task_id: u.status.state for u in worker.statuses()}["t2"] == TaskState.FAILED
        )
        second.lead()
        await eventually(lambda: session.manager == second.addr)
        await eventually(lambda: states() == [TaskState.RUNNING, TaskState.FAILED])

        # And back to the first.
        await second.step_down()
        first.lead()
        await eventually(lambda: session.manager == first.addr)
        # No container was made again, and the first task's never restarted.
        assert set(engine.containers) == containers
        assert (t1.state, t1.pid) == ("running", pid)
        # The agent follows what the new leader sends.
        await store.commit(
            [Op.update(store.get(Task, "t1").replace(desired_state=TaskState.SHUTDOWN))]
        )
        await eventually(lambda: states() == [TaskState.SHUTDOWN, TaskState.FAILED])

        assert set(engine.containers) == containers
        assert store.get(Node, node_id).status.state == NodeState.READY
    finally:
        for job in jobs:
            await cancel_and_wait(job)


class GatedDispatcher(Dispatcher):
    """A dispatcher whose registrations wait for the test (as a slow store write would), and
    that notes every session it is given."""

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self.registering = asyncio.Event()
        self.gate = asyncio.Event()
        self.attached: list[str] = []

    async def register(self, node_id: str, message: Register) -> Registered:
        self.registering.set()
        await self.gate.wait()
        return await super().register(node_id, message)

    def attach(self, node_id: str, connection: AgentConnection) -> None:
        self.attached.append(node_id)
        super().attach(node_id, connection)


async def test_a_term_that_ends_while_an_agent_registers_gives_it_no_session(
    tmp_path: Path,
) -> None:
    manager = await Manager.create(tmp_path)
    dispatcher = GatedDispatcher(manager.store, manager.clock)
    port = Port(manager.store, manager.clock, manager.credentials, dispatcher)
    await port.start()
    try:
        port.lead()
        credentials = Credentials(tmp_path / "n2")
        node_id = await join(manager, port.addr, credentials)
        session = agent_session([port.addr], credentials, FakeWorker())
        running = asyncio.create_task(session.run())
        await asyncio.wait_for(dispatcher.registering.wait(), 5)
        await port.step_down()
        dispatcher.gate.set()
        # The node was written Ready, but the session is closed before it is served.
        await eventually(lambda: manager.store.get(Node, node_id).status.state == NodeState.READY)
        tls = client_context(credentials.trust(), credentials)
        assert await open_session(port.addr, tls) == 503
        await stop(running)
        assert dispatcher.attached == []
    finally:
        await port.stop()
