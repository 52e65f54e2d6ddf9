"""Tasks another manager wrote are read on demand: a store on etcd keeps each one as the
watch brought it until a read asks for it, and what it answers is what was written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import VersionConflict
from swarmlet.manager.etcd.client import EtcdClient
from swarmlet.manager.store import Action, Event, Op, Store, Watch
from swarmlet.manager.store.encryption import Cipher, new_dek
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.manager.store.events import Unread
from swarmlet.models import (
    ContainerSpec,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)

WITHIN_S = 30.0


@dataclass
class Pair:
    writer: Store  # the leader, say: its own writes come back as it wrote them
    reader: Store  # another manager: it is sent them


@pytest.fixture
async def pair(etcd_client: EtcdClient, prefix: bytes) -> AsyncIterator[Pair]:
    cipher = Cipher(new_dek())
    writer = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    reader = await Store.open(EtcdBackend(etcd_client, cipher, prefix), FakeClock())
    yield Pair(writer, reader)
    writer.close()
    reader.close()


def task(task_id: str, service_id: str = "svc-a", node_id: str | None = None) -> Task:
    return Task(
        id=task_id,
        service_id=service_id,
        node_id=node_id,
        spec=TaskSpec(container_spec=ContainerSpec(image="busybox")),
    )


async def events_until(watch: Watch, revision: int) -> list[Event]:
    events: list[Event] = []
    while not events or events[-1].revision < revision:
        event = await asyncio.wait_for(watch.next(), WITHIN_S)
        assert event is not None
        events.append(event)
    return events


async def test_a_task_comes_unread_and_is_read_once_as_written(pair: Pair) -> None:
    watch, own = pair.reader.watch(), pair.writer.watch()
    (written,) = await pair.writer.commit([Op.create(task("t1"))])
    (event,) = await events_until(watch, written.version.index)
    assert (event.action, event.kind, event.object_id) == (Action.CREATE, Task, "t1")
    assert isinstance(event.subject, Unread)  # nothing parsed for the watcher yet
    found = pair.reader.get(Task, "t1")
    assert found == written
    assert event.obj is found  # one parse, shared by the cache and the event
    # The writer's own write comes back as it wrote it: nothing to read.
    (mine,) = await events_until(own, written.version.index)
    assert mine.subject == written
    watch.close()
    own.close()


async def test_every_version_unread_reads_as_its_own_and_the_indexes_follow(
    pair: Pair,
) -> None:
    watch = pair.reader.watch()
    (new,) = await pair.writer.commit([Op.create(task("t1"))])
    assigned = new.replace(node_id="node-1", status=TaskStatus(state=TaskState.ASSIGNED))
    (assigned,) = await pair.writer.commit([Op.update(assigned)])
    running = assigned.replace(status=TaskStatus(state=TaskState.RUNNING, message="started"))
    (running,) = await pair.writer.commit([Op.update(running)])
    events = await events_until(watch, running.version.index)
    assert all(isinstance(e.subject, Unread) for e in events)
    # The reads by service and by node see the last version, moved to its node while unread.
    assert pair.reader.tasks_of_service("svc-a") == [running]
    assert pair.reader.tasks_of_node("node-1") == [running]
    # Each event reads as the version it was.
    assert [(e.action, e.obj) for e in events] == [
        (Action.CREATE, new),
        (Action.UPDATE, assigned),
        (Action.UPDATE, running),
    ]
    watch.close()


async def test_a_task_deleted_unread_leaves_no_trace_and_its_event_holds_its_last_state(
    pair: Pair,
) -> None:
    (first,) = await pair.writer.commit([Op.create(task("t1", node_id="node-1"))])
    await until_seen(pair.reader, first.version.index)
    assert pair.reader.tasks_of_node("node-1") == [first]  # read, and indexed
    moved = first.replace(node_id="node-2", service_id="svc-a")
    (moved,) = await pair.writer.commit([Op.update(moved)])
    watch = pair.reader.watch()
    await pair.writer.commit([Op.delete(moved)])
    (gone,) = await events_until(watch, pair.writer.revision)
    assert gone.action is Action.DELETE
    assert gone.obj == moved  # the version no one read, as it was
    assert pair.reader.find(Task, "t1") is None
    assert pair.reader.all(Task) == []
    assert pair.reader.tasks_of_node("node-1") == []
    assert pair.reader.tasks_of_node("node-2") == []
    assert pair.reader.tasks_of_service("svc-a") == []
    watch.close()


async def test_a_write_through_the_reader_checks_the_unread_version(pair: Pair) -> None:
    (first,) = await pair.writer.commit([Op.create(task("t1"))])
    (second,) = await pair.writer.commit(
        [Op.update(first.replace(status=TaskStatus(state=TaskState.PENDING)))]
    )
    await until_seen(pair.reader, second.version.index)
    # A write read at the unread version is taken; one read before it is not.
    with pytest.raises(VersionConflict):
        await pair.reader.commit([Op.update(first.replace(desired_state=TaskState.SHUTDOWN))])
    failed = second.replace(status=TaskStatus(state=TaskState.FAILED, message="x"))
    (written,) = await pair.reader.commit([Op.update(failed)])
    assert written.status.state is TaskState.FAILED
    await until_seen(pair.writer, written.version.index)
    assert pair.writer.get(Task, "t1") == written


async def test_services_are_read_at_once(pair: Pair) -> None:
    watch = pair.reader.watch()
    (web,) = await pair.writer.commit([Op.create(Service(id="s", spec=ServiceSpec(name="web")))])
    (event,) = await events_until(watch, web.version.index)
    assert event.subject == web  # a kind with unique names: every write checks them
    assert pair.reader.by_name(Service, "web") == web
    watch.close()


async def until_seen(store: Store, revision: int) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while store.revision < revision:
        assert asyncio.get_running_loop().time() < deadline, f"revision {revision} not seen"
        await asyncio.sleep(0.01)
