"""The allocator's control loop on the in-memory store, driven by its watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.allocator import Allocator
from swarmlet.manager.scheduler.scheduler import Scheduler
from swarmlet.manager.store import Op, Store
from swarmlet.models import Network, Node, NodeState, Service, Task, TaskState
from tests.manager.allocator.builders import (
    addresses,
    ingress,
    network,
    node,
    port,
    service,
    task,
)


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


class Running:
    """The allocator running on a store; ``restart`` stops it and starts a new one."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        self.store = store
        self.clock = clock
        self.job = self._start()

    def _start(self) -> asyncio.Task[None]:
        return asyncio.create_task(Allocator(self.store, self.clock).run(), name="allocator")

    async def stop(self) -> None:
        if self.job.done():
            self.job.result()  # an allocator that died fails the test
        self.job.cancel()
        await asyncio.gather(self.job, return_exceptions=True)

    async def restart(self) -> None:
        await self.stop()
        self.job = self._start()
        await settle()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    clock = FakeClock()
    store = Store(clock=clock)
    await store.commit([Op.create(ingress()), Op.create(network("apps", [ingress()]))])
    yield store
    store.close()


@pytest.fixture
async def allocator(store: Store) -> AsyncIterator[Running]:
    running = Running(store, FakeClock())
    await settle()
    yield running
    await running.stop()


async def create(store: Store, *objects) -> None:
    await store.commit([Op.create(obj) for obj in objects])


def apps(store: Store) -> Network:
    found = store.by_name(Network, "apps")
    assert found is not None
    return found


async def test_services_tasks_and_nodes_get_their_addresses(store, allocator):
    await create(store, node("n1"), node("n2"))
    web = service("web", networks=[(apps(store).id, ["www"])], ports=[port(80)])
    await create(store, web)
    await create(store, task(web, 1), task(web, 2))
    await settle()

    written = store.get(Service, web.id)
    assert written.endpoint is not None
    assert [(p.target_port, p.published_port) for p in written.endpoint.ports or []] == [
        (80, 30000)
    ]
    assert [v.addr for v in written.endpoint.virtual_ips or []] == ["10.0.0.2/24", "10.0.1.2/24"]
    tasks = sorted(store.tasks_of_service(web.id), key=lambda t: t.slot or 0)
    assert [t.state for t in tasks] == [TaskState.PENDING, TaskState.PENDING]
    assert [t.networks_attachments[1].aliases for t in tasks] == [["www"], ["www"]]
    nodes = {n.id: n for n in store.all(Node)}
    held = [a.address for n in nodes.values() for a in n.attachments]
    held += [a for t in tasks for a in addresses(t).values()]
    assert len(held) == 8
    assert len(set(held)) == 8


async def test_dynamic_ports_never_take_one_another_service_holds(store, allocator):
    holder = service("holder", ports=[port(80, 30000)])
    await create(store, holder)
    await create(store, service("auto", ports=[port(80)]), service("more", ports=[port(81)]))
    await settle()
    published = {
        (s.endpoint.ports or [])[0].published_port
        for s in store.all(Service)
        if s.endpoint is not None and s.id != holder.id
    }
    assert published == {30001, 30002}


async def test_a_deleted_task_frees_its_address_for_a_waiting_one(store, allocator):
    small = network("small", store.all(Network), subnet="10.9.0.0/29")
    await create(store, small)
    svc = service("db", networks=[small.id], mode="dnsrr")
    await create(store, svc)
    await create(store, *(task(svc, slot) for slot in range(1, 7)))
    await settle()
    tasks = store.tasks_of_service(svc.id)
    pending = [t for t in tasks if t.state == TaskState.PENDING]
    [waiting] = [t for t in tasks if t.state == TaskState.NEW]
    assert len(pending) == 5
    assert "no address left on network small" in (waiting.status.err or "")

    freed = pending[0]
    await store.commit([Op.delete(freed)])
    await settle()
    now = store.get(Task, waiting.id)
    assert now.state == TaskState.PENDING
    assert now.status.err is None
    assert addresses(now) == addresses(freed)


async def test_an_ended_task_frees_its_address(store, allocator):
    svc = service("db", networks=[apps(store).id], mode="dnsrr")
    await create(store, svc)
    first = task(svc, 1)
    await create(store, first)
    await settle()
    first = store.get(Task, first.id)
    ended = first.replace(
        status=first.status.replace(state=TaskState.FAILED), desired_state=TaskState.SHUTDOWN
    )
    await store.commit([Op.update(ended)])
    second = task(svc, 2)
    await create(store, second)
    await settle()
    assert addresses(store.get(Task, second.id)) == addresses(first)


async def test_a_removed_network_releases_vips_and_node_addresses(store, allocator):
    await create(store, node("n1"))
    svc = service("web", networks=[apps(store).id])
    await create(store, svc)
    await settle()
    assert store.get(Node, "n1").attachments
    without = store.get(Service, svc.id)
    await store.commit([Op.update(without.replace(spec=service("web").spec))])
    await settle()
    endpoint = store.get(Service, svc.id).endpoint
    assert endpoint is not None
    assert endpoint.virtual_ips is None
    assert store.get(Node, "n1").attachments == []


async def test_a_node_that_becomes_ready_gets_its_addresses(store, allocator):
    await create(store, node("n1", NodeState.DOWN), service("web", networks=[apps(store).id]))
    await settle()
    assert store.get(Node, "n1").attachments == []
    down = store.get(Node, "n1")
    await store.commit([Op.update(down.replace(status=down.status.replace(state=NodeState.READY)))])
    await settle()
    [attachment] = store.get(Node, "n1").attachments
    assert attachment.network_id == apps(store).id


async def test_allocations_survive_a_restart_of_the_controller(store, allocator):
    await create(store, node("n1"))
    svc = service("web", networks=[apps(store).id], ports=[port(80)])
    await create(store, svc)
    await create(store, task(svc, 1))
    await settle()
    before = {
        "services": store.all(Service),
        "tasks": store.all(Task),
        "nodes": store.all(Node),
    }
    revision = store.revision
    await allocator.restart()
    assert store.revision == revision  # nothing to redo
    assert before == {
        "services": store.all(Service),
        "tasks": store.all(Task),
        "nodes": store.all(Node),
    }
    await create(store, task(svc, 2))
    await settle()
    held = [a for t in store.all(Task) for a in addresses(t).values()]
    held += [v.addr for s in store.all(Service) if s.endpoint for v in s.endpoint.virtual_ips or []]
    held += [a.address for n in store.all(Node) for a in n.attachments]
    assert len(held) == len(set(held))


async def test_the_scheduler_places_tasks_once_allocated(store, allocator):
    scheduler = asyncio.create_task(Scheduler(store, FakeClock()).run(), name="scheduler")
    try:
        await create(store, node("n1"))
        svc = service("web", networks=[apps(store).id])
        await create(store, svc)
        await create(store, task(svc, 1))
        await settle()
        [placed] = store.tasks_of_service(svc.id)
        assert (placed.state, placed.node_id) == (TaskState.ASSIGNED, "n1")
        assert addresses(placed) == {"apps": "10.0.1.3/24"}
    finally:
        scheduler.cancel()
        await asyncio.gather(scheduler, return_exceptions=True)
