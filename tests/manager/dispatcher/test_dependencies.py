"""Secrets and configs go with the assignments of exactly the nodes whose tasks use them."""

from __future__ import annotations

import asyncio

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.decide import dependencies, nodes_using
from swarmlet.manager.store import MemoryBackend, Op, Store
from swarmlet.models import (
    Cluster,
    Config,
    ConfigReference,
    ConfigSpec,
    ContainerSpec,
    Node,
    NodeDescription,
    NodeStatus,
    RuntimeTarget,
    Secret,
    SecretSpec,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.protocol import Assignments, Register, StatusUpdate
from tests.manager.dispatcher import fakes
from tests.manager.dispatcher.builders import DB, task

API = Secret(id="sapi", spec=SecretSpec(name="api", data=b"key"))
NGINX = Config(id="cnginx", spec=ConfigSpec(name="nginx.conf", data=b"server {}"))
CRED = Config(id="ccred", spec=ConfigSpec(name="cred", data=b"{}"))
SECRETS = {s.id: s for s in (DB, API)}
CONFIGS = {c.id: c for c in (NGINX, CRED)}


# The decisions


def test_a_node_is_sent_exactly_what_its_tasks_reference() -> None:
    tasks = [task("t1", "n1", (DB,), (NGINX,)), task("t2", "n1", (DB,))]
    sent = dependencies(tasks, SECRETS, CONFIGS)
    assert sent.secrets == [DB]
    assert sent.configs == [NGINX]


def test_a_node_without_references_is_sent_none() -> None:
    assert dependencies([task("t1", "n2")], SECRETS, CONFIGS) == ([], [])
    assert dependencies([], SECRETS, CONFIGS) == ([], [])


def test_a_terminal_task_needs_its_secrets_no_more() -> None:
    ended = task("t1", "n1", (DB,), (NGINX,), state=TaskState.FAILED)
    assert dependencies([ended], SECRETS, CONFIGS) == ([], [])
    running = task("t2", "n1", (API,), state=TaskState.RUNNING)
    assert dependencies([ended, running], SECRETS, CONFIGS).secrets == [API]


def test_a_removed_secret_is_not_sent() -> None:
    assert dependencies([task("t1", "n1", (DB, API))], {API.id: API}, {}).secrets == [API]


def test_a_runtime_config_goes_too() -> None:
    ref = ConfigReference(config_id=CRED.id, config_name=CRED.name, runtime=RuntimeTarget())
    spec = TaskSpec(container_spec=ContainerSpec(image="busybox", configs=[ref]))
    credential = task("t1", "n1").replace(spec=spec)
    assert dependencies([credential], SECRETS, CONFIGS).configs == [CRED]


def test_the_nodes_using_a_secret() -> None:
    tasks = [
        task("t1", "n1", (DB,)),
        task("t2", "n2", (), (NGINX,)),
        task("t3", "n3", (DB,), state=TaskState.COMPLETE),
        task("t4", "n4", (DB,), state=TaskState.PENDING),  # not assigned yet
        task("t5", None, (DB,)),
    ]
    assert nodes_using(DB.id, tasks) == {"n1"}
    assert nodes_using(NGINX.id, tasks) == {"n2"}
    assert nodes_using(API.id, tasks) == set()


# The dispatcher


class FakeConnection(fakes.FakeConnection):
    @property
    def last(self) -> Assignments:
        return self.assignments()[-1]

    def received(self) -> tuple[list[str], list[str]]:
        """The IDs of the secrets and configs of the last assignments."""
        last = self.last
        return [s.id for s in last.secrets], [c.id for c in last.configs]


@pytest.fixture
async def store() -> Store:
    store = Store(MemoryBackend(), FakeClock())
    await store.commit(
        [Op.create(Cluster(id="c1")), Op.create(DB), Op.create(API), Op.create(NGINX)]
    )
    return store


async def connect(store: Store, dispatcher: Dispatcher, node_id: str) -> FakeConnection:
    await store.commit([Op.create(Node(id=node_id, status=NodeStatus()))])
    await dispatcher.register(node_id, Register(description=NodeDescription(hostname=node_id)))
    connection = FakeConnection()
    dispatcher.attach(node_id, connection)
    return connection


async def test_only_nodes_running_a_task_that_uses_a_secret_receive_it(store: Store) -> None:
    dispatcher = Dispatcher(store, FakeClock())
    await store.commit(
        [Op.create(task("t1", "n1", (DB,), (NGINX,))), Op.create(task("t2", "n2", (API,)))]
    )
    n1 = await connect(store, dispatcher, "n1")
    n2 = await connect(store, dispatcher, "n2")
    n3 = await connect(store, dispatcher, "n3")
    assert n1.received() == ([DB.id], [NGINX.id])
    assert n2.received() == ([API.id], [])
    assert n3.last.tasks == []
    assert n3.received() == ([], [])
    assert n1.last.secrets[0].spec.data == b"hunter2"  # the agent needs the data itself

    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    # A task using the secret lands on n3: n3 now gets it, with the task.
    await store.commit([Op.create(task("t3", "n3", (DB,)))])
    await asyncio.sleep(0.01)
    assert n3.received() == ([DB.id], [])
    # t1 ends (n1's own report): n1 keeps the task in its set, and loses what only t1 used.
    await dispatcher.update_statuses(
        "n1", [StatusUpdate(task_id="t1", status=TaskStatus(state=TaskState.COMPLETE))]
    )
    await asyncio.sleep(0.01)
    assert [t.id for t in n1.last.tasks] == ["t1"]
    assert n1.received() == ([], [])
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_a_changed_secret_is_sent_again_to_the_nodes_using_it(store: Store) -> None:
    dispatcher = Dispatcher(store, FakeClock())
    await store.commit([Op.create(task("t1", "n1", (DB,))), Op.create(task("t2", "n2", (API,)))])
    n1 = await connect(store, dispatcher, "n1")
    n2 = await connect(store, dispatcher, "n2")
    runner = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.01)  # its first pass sends every agent its assignments again
    sent_to_n2 = len(n2.sent)
    relabelled = store.get(Secret, DB.id).replace(spec=DB.spec.replace(labels={"rotated": "yes"}))
    await store.commit([Op.update(relabelled)])
    await asyncio.sleep(0.01)
    assert n1.last.secrets[0].spec.labels == {"rotated": "yes"}
    assert len(n2.sent) == sent_to_n2  # n2 does not use it: nothing to say
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
