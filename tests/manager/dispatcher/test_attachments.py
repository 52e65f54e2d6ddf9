"""Network attachments on the in-memory store and a fake clock, with the manager's controllers
running: the allocator gives the address, everything that runs tasks leaves them alone."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import Forbidden, NotFound
from swarmlet.manager import orchestrator
from swarmlet.manager.allocator import Allocator, allocate_network, ingress_network
from swarmlet.manager.controller import Controller
from swarmlet.manager.dispatcher import Dispatcher
from swarmlet.manager.dispatcher.attachments import (
    ATTACH_FAILED,
    AttachFailed,
    Attachments,
    address_of,
    network_of,
)
from swarmlet.manager.dispatcher.decide import accept_status
from swarmlet.manager.orchestrator import reap
from swarmlet.manager.scheduler.scheduler import Scheduler
from swarmlet.manager.store import Action, MemoryBackend, Op, Store
from swarmlet.models import (
    Cluster,
    ContainerSpec,
    IPAMConfig,
    Network,
    NetworkAttachmentConfig,
    NetworkIPAM,
    Node,
    NodeAvailability,
    NodeState,
    NodeStatus,
    ReplicatedMode,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.models.service import NetworkAttachmentSpec
from swarmlet.protocol import AttachRequest, NetworkState
from tests.manager.dispatcher import fakes


class FakeConnection(fakes.FakeConnection):
    def assigned(self) -> set[str]:
        """Every task ID the node was ever told to run."""
        return {t.id for m in self.assignments() for t in m.tasks}

    def network_state(self) -> NetworkState:
        return [m for m in self.sent if isinstance(m, NetworkState)][-1]


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def network(name: str, existing: list[Network], *, attachable: bool, subnet: str = "") -> Network:
    asked = Network(
        id=f"{name}-id-0123456789",
        name=name,
        attachable=attachable,
        ipam=NetworkIPAM(config=[IPAMConfig(subnet=subnet)] if subnet else []),
    )
    return allocate_network(asked, existing)


INGRESS = ingress_network("ingress-id")
DC = network("dc", [INGRESS], attachable=True)
APPS = network("apps", [INGRESS, DC], attachable=False)
# Room for one address: .1 is the gateway, .2 the only one left.
TINY = network("tiny", [INGRESS, DC, APPS], attachable=True, subnet="10.9.0.0/30")


def ready(node_id: str, addr: str) -> Node:
    return Node(id=node_id, status=NodeStatus(state=NodeState.READY, addr=addr))


def ask(container: str, target: str = "dc", name: str = "", aliases: list[str] | None = None):
    return AttachRequest(target=target, container_id=container, name=name, aliases=aliases or [])


class Plane:
    """The store with the manager's controllers (or some of them) running on a fake clock."""

    def __init__(self, store: Store, clock: FakeClock, *, controllers: bool) -> None:
        self.clock = clock
        self.store = store
        self.attachments = Attachments(self.store, self.clock)
        self.dispatcher = Dispatcher(self.store, self.clock)
        self.connections = {node_id: FakeConnection() for node_id in ("n1", "n2")}
        self.jobs: list[asyncio.Task[None]] = []
        if controllers:
            loops: list[Allocator | Scheduler | Controller | Dispatcher] = [
                Allocator(self.store, self.clock),
                Scheduler(self.store, self.clock),
                *orchestrator.controllers(self.store, self.clock),
                self.dispatcher,
            ]
            self.jobs = [asyncio.create_task(loop.run()) for loop in loops]
        for node_id, connection in self.connections.items():
            self.dispatcher.attach(node_id, connection)

    @classmethod
    async def start(cls, *, controllers: bool = True) -> Plane:
        """The cluster's networks and two Ready nodes, and the controllers running."""
        clock = FakeClock()
        store = Store(MemoryBackend(), clock)
        await store.commit(
            [
                Op.create(Cluster(id="c1")),
                *(Op.create(n) for n in (INGRESS, DC, APPS, TINY)),
                Op.create(ready("n1", "192.168.254.11")),
                Op.create(ready("n2", "192.168.254.12")),
            ]
        )
        return cls(store, clock, controllers=controllers)

    async def stop(self) -> None:
        for job in self.jobs:
            if job.done():
                job.result()  # a controller that died fails the test
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        self.store.close()

    def task(self, task_id: str) -> Task:
        return self.store.get(Task, task_id)


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    running = await Plane.start()
    await settle()
    yield running
    await running.stop()


@pytest.fixture
async def bare() -> AsyncIterator[Plane]:
    """No controller runs: nothing gives an attachment its address."""
    running = await Plane.start(controllers=False)
    yield running
    await running.stop()


async def test_an_attachment_is_a_task_of_the_asking_node_that_the_allocator_addresses(
    plane: Plane,
) -> None:
    watch = plane.store.watch()
    request = ask("ctr1", name="web", aliases=["www", "front"])
    task = await plane.attachments.attach("n1", request)
    assert (task.node_id, task.service_id, task.name) == ("n1", "", "web")
    assert task.spec.network_attachment_spec == NetworkAttachmentSpec(container_id="ctr1")
    assert task.spec.networks == [NetworkAttachmentConfig(target=DC.id, aliases=["www", "front"])]
    assert task.is_attachment
    assert task.desired_state == TaskState.RUNNING
    assert (task.status.state, task.status.message) == (TaskState.RUNNING, "started")
    (attachment,) = task.networks_attachments
    assert attachment.network.id == DC.id
    assert attachment.aliases == ["www", "front"]
    address = ipaddress.ip_interface(address_of(task))
    assert address.network == ipaddress.ip_network(DC.subnet)
    # Created NEW, given its address by the allocator (PENDING), then started.
    await settle()
    steps = [
        (event.action, event.obj.status.state, event.obj.status.message)
        for event in watch.drain()
        if isinstance(event.obj, Task) and event.obj.id == task.id
    ]
    watch.close()
    assert steps == [
        (Action.CREATE, TaskState.NEW, "created"),
        (Action.UPDATE, TaskState.PENDING, "pending task scheduling"),
        (Action.UPDATE, TaskState.RUNNING, "started"),
    ]
    # Its node got its own address on the network in the same pass: the host's bridge.
    own = {a.network_id: a.address for a in plane.store.get(Node, "n1").attachments}
    assert DC.id in own
    assert own[DC.id] != address_of(task)


async def test_the_network_is_named_by_id_name_or_id_prefix(plane: Plane) -> None:
    by_name = await plane.attachments.attach("n1", ask("c1", "dc"))
    by_id = await plane.attachments.attach("n1", ask("c2", DC.id))
    by_prefix = await plane.attachments.attach("n1", ask("c3", DC.id[:4]))
    assert {network_of(t) for t in (by_name, by_id, by_prefix)} == {DC.id}


async def test_unknown_and_unattachable_networks_are_refused_with_swarms_words(
    plane: Plane,
) -> None:
    revision = plane.store.revision
    with pytest.raises(NotFound, match=r"^network nope not found$"):
        await plane.attachments.attach("n1", ask("c1", "nope"))
    with pytest.raises(Forbidden, match=r"^network apps not manually attachable$"):
        await plane.attachments.attach("n1", ask("c1", "apps"))
    assert plane.store.revision == revision
    # ingress never is, whatever its flag says.
    attachable_ingress = plane.store.get(Network, INGRESS.id).replace(attachable=True)
    await plane.store.commit([Op.update(attachable_ingress)])
    revision = plane.store.revision
    with pytest.raises(Forbidden, match=r"^network ingress not manually attachable$"):
        await plane.attachments.attach("n1", ask("c1", "ingress"))
    assert plane.store.revision == revision
    assert not [t for t in plane.store.all(Task) if t.is_attachment]


async def test_attaching_again_returns_the_same_attachment(plane: Plane) -> None:
    first = await plane.attachments.attach("n1", ask("ctr1"))
    again = await plane.attachments.attach("n1", ask("ctr1", DC.id))
    assert (again.id, address_of(again)) == (first.id, address_of(first))
    # Another container, or the same ID on another node, is another attachment.
    other = await plane.attachments.attach("n1", ask("ctr2"))
    elsewhere = await plane.attachments.attach("n2", ask("ctr1"))
    addresses = {address_of(t) for t in (first, other, elsewhere)}
    assert len(addresses) == 3
    assert [t.id for t in plane.attachments.of_node("n1")] == sorted([first.id, other.id])
    assert [t.id for t in plane.attachments.of_node("n2")] == [elsewhere.id]


async def test_two_requests_for_the_same_container_at_once_share_one_attachment(
    plane: Plane,
) -> None:
    first, second = await asyncio.gather(
        plane.attachments.attach("n1", ask("ctr1")), plane.attachments.attach("n1", ask("ctr1"))
    )
    assert first.id == second.id
    assert len(plane.attachments.of_node("n1")) == 1


async def test_no_address_in_20_seconds_fails_with_swarms_words_and_leaves_nothing(
    bare: Plane,
) -> None:
    asking = asyncio.create_task(bare.attachments.attach("n1", ask("ctr1")))
    await settle()
    (waiting,) = bare.attachments.of_node("n1")
    assert waiting.state == TaskState.NEW
    await bare.clock.advance(19.9)
    assert not asking.done()
    await bare.clock.advance(0.2)
    with pytest.raises(AttachFailed) as failed:
        await asking
    assert failed.value.message == ATTACH_FAILED.format("context deadline exceeded")
    assert failed.value.message.startswith(
        "attaching to network failed, make sure your network options are correct and check "
        "manager logs: "
    )
    assert bare.attachments.of_node("n1") == []


async def test_a_full_network_fails_after_20_seconds_saying_why(plane: Plane) -> None:
    first = await plane.attachments.attach("n1", ask("ctr1", "tiny"))
    assert address_of(first) == "10.9.0.2/30"
    asking = asyncio.create_task(plane.attachments.attach("n1", ask("ctr2", "tiny")))
    await settle()
    await plane.clock.advance(20.1)
    with pytest.raises(AttachFailed, match=r"no address left on network tiny \(10\.9\.0\.0/30\)"):
        await asking
    assert [t.id for t in plane.attachments.of_node("n1")] == [first.id]


async def test_an_asker_that_goes_away_leaves_nothing_behind(bare: Plane) -> None:
    asking = asyncio.create_task(bare.attachments.attach("n1", ask("ctr1")))
    await settle()
    assert bare.attachments.of_node("n1")
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    assert bare.attachments.of_node("n1") == []


async def test_detaching_deletes_the_task_and_frees_the_address(plane: Plane) -> None:
    first = await plane.attachments.attach("n1", ask("ctr1"))
    await plane.attachments.detach("n1", first.id)
    assert plane.store.find(Task, first.id) is None
    await settle()
    # The next container gets the address back: pools are rebuilt from what the store holds.
    second = await plane.attachments.attach("n2", ask("ctr2"))
    assert second.id != first.id
    assert address_of(second) == address_of(first)


async def test_only_the_own_attachment_of_a_node_can_be_detached(plane: Plane) -> None:
    mine = await plane.attachments.attach("n1", ask("ctr1"))
    with pytest.raises(Forbidden, match=rf"^attachment {mine.id} doesn't belong to this node$"):
        await plane.attachments.detach("n2", mine.id)
    with pytest.raises(NotFound, match=r"^attachment nope not found$"):
        await plane.attachments.detach("n1", "nope")
    service_task = Task(id="t-svc", service_id="s1", node_id="n1")
    await plane.store.commit([Op.create(service_task)])
    with pytest.raises(NotFound, match=r"^attachment t-svc not found$"):
        await plane.attachments.detach("n1", "t-svc")
    assert plane.store.find(Task, mine.id) is not None
    assert plane.store.find(Task, "t-svc") is not None
    assert [t.id for t in plane.attachments.of_node("n1")] == [mine.id]


async def test_a_removed_nodes_attachments_are_deleted(plane: Plane) -> None:
    gone = await plane.attachments.attach("n2", ask("ctr1"))
    kept = await plane.attachments.attach("n1", ask("ctr2"))
    # Down is not gone: a host whose daemon restarts finds its attachments again.
    n2 = plane.store.get(Node, "n2")
    await plane.store.commit(
        [Op.update(n2.replace(status=n2.status.replace(state=NodeState.DOWN)))]
    )
    await settle()
    assert plane.store.get(Task, gone.id).state == TaskState.RUNNING
    await plane.store.commit([Op.delete(plane.store.get(Node, "n2"))])
    await settle()
    assert plane.store.find(Task, gone.id) is None
    assert plane.store.get(Task, kept.id).state == TaskState.RUNNING


def test_the_reaper_deletes_attachments_only_of_nodes_that_are_gone() -> None:
    def attachment(task_id: str, node_id: str, state: TaskState) -> Task:
        return Task(
            id=task_id,
            service_id="",
            node_id=node_id,
            spec=TaskSpec(network_attachment_spec=NetworkAttachmentSpec(container_id=task_id)),
            status=TaskStatus(state=state),
        )

    tasks = [
        attachment("new", "n1", TaskState.NEW),
        attachment("pending", "n1", TaskState.PENDING),
        attachment("running", "n1", TaskState.RUNNING),
        attachment("orphan", "n9", TaskState.RUNNING),
    ]
    assert [t.id for t in reap(None, tasks, {"n1"})] == ["orphan"]


async def test_everything_that_runs_tasks_leaves_an_attachment_alone(plane: Plane) -> None:
    service = Service(
        id="s1",
        spec=ServiceSpec(
            name="api",
            task_template=TaskSpec(
                container_spec=ContainerSpec(image="busybox"),
                networks=[NetworkAttachmentConfig(target=DC.id)],
            ),
            mode=ServiceMode(replicated=ReplicatedMode(replicas=2)),
        ),
    )
    await plane.store.commit([Op.create(service)])
    await settle()
    attached = await plane.attachments.attach("n1", ask("ctr1", name="pg", aliases=["db"]))
    await settle()
    version = plane.task(attached.id).version
    # Drained, then Down: the service's tasks move; the attachment stays as it is.
    n1 = plane.store.get(Node, "n1")
    await plane.store.commit(
        [Op.update(n1.replace(spec=n1.spec.replace(availability=NodeAvailability.DRAIN)))]
    )
    await settle()
    n1 = plane.store.get(Node, "n1")
    await plane.store.commit(
        [Op.update(n1.replace(status=n1.status.replace(state=NodeState.DOWN)))]
    )
    await settle()
    assert plane.task(attached.id).version == version
    assert plane.task(attached.id).state == TaskState.RUNNING
    service_tasks = plane.store.tasks_of_service("s1")
    assert service_tasks
    assert not any(t.is_attachment for t in service_tasks)
    # No worker is ever told to run it; the scheduler counts only the service's tasks.
    assert (
        service_tasks[0].id
        in plane.connections["n1"].assigned() | plane.connections["n2"].assigned()
    )
    assert all(attached.id not in c.assigned() for c in plane.connections.values())
    # A stale or confused agent's report about it is not taken.
    running = TaskStatus(state=TaskState.COMPLETE)
    assert accept_status(plane.task(attached.id), "n1", running) is None
    # Every host on the network learns its name, and where it lives.
    view = next(v for v in plane.connections["n2"].network_state().networks if v.id == DC.id)
    (entry,) = view.attachments
    assert (entry.id, entry.name, entry.aliases) == (attached.id, "pg", ["db"])
    assert entry.address == address_of(attached).split("/")[0]
