"""Network attachments on the manager's port over real TLS on loopback, through the host's
client (``swarmlet.agent.attachments``) with a joined node's certificate; the allocator runs
beside the port."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from swarmlet.agent import attachments as client
from swarmlet.clock import FakeClock
from swarmlet.errors import Forbidden, InvalidSpec, NotFound, Unavailable
from swarmlet.manager.allocator import Allocator, allocate_network, ingress_network
from swarmlet.manager.dispatcher.attachments import ATTACH_FAILED, Attachments
from swarmlet.manager.store import Op
from swarmlet.models import Network, Node, Task
from swarmlet.pki import Credentials
from swarmlet.protocol import ATTACHMENTS_PATH, AttachmentInfo
from tests.manager.dispatcher.loopback import Manager, eventually, free_port


def networks() -> list[Network]:
    ingress = ingress_network("ingress-id")
    dc = allocate_network(Network(id="dc-id", name="dc", attachable=True), [ingress])
    apps = allocate_network(Network(id="apps-id", name="apps"), [ingress, dc])
    return [ingress, dc, apps]


@pytest.fixture
async def allocated(manager: Manager) -> AsyncIterator[Manager]:
    """The manager's port with the networks made and the allocator running."""
    await manager.store.commit([Op.create(network) for network in networks()])
    allocator = asyncio.create_task(Allocator(manager.store, manager.clock).run())
    yield manager
    allocator.cancel()
    await asyncio.gather(allocator, return_exceptions=True)


async def joined(manager: Manager, folder: Path) -> tuple[str, Credentials]:
    credentials = Credentials(folder)
    return await manager.join_worker(credentials), credentials


async def test_a_node_attaches_lists_and_detaches_its_containers(
    allocated: Manager, tmp_path: Path
) -> None:
    node_id, credentials = await joined(allocated, tmp_path / "n2")
    addrs = [allocated.addr]
    info = await client.attach(credentials, addrs, "dc", "ctr1", name="web", aliases=["www"])
    assert (info.network, info.container_id) == ("dc-id", "ctr1")
    assert ipaddress.ip_interface(info.address).network == ipaddress.ip_network("10.0.1.0/24")
    task = allocated.store.get(Task, info.id)
    assert (task.node_id, task.name, task.is_attachment) == (node_id, "web", True)
    # Asked again (the engine retries), the same one.
    assert await client.attach(credentials, addrs, "dc", "ctr1") == info
    other = await client.attach(credentials, addrs, "dc-id", "ctr2")
    assert await client.list_attachments(credentials, addrs) == sorted(
        [info, other], key=lambda item: item.id
    )

    await client.detach(credentials, addrs, info.id)
    assert allocated.store.find(Task, info.id) is None
    assert await client.list_attachments(credentials, addrs) == [other]
    with pytest.raises(NotFound, match=rf"^attachment {info.id} not found$"):
        await client.detach(credentials, addrs, info.id)


async def test_refusals_carry_swarms_words_as_the_engine_shows_them(
    allocated: Manager, tmp_path: Path
) -> None:
    _, credentials = await joined(allocated, tmp_path / "n2")
    addrs = [allocated.addr]
    with pytest.raises(Forbidden) as refused:
        await client.attach(credentials, addrs, "apps", "ctr1")
    assert client.engine_message("apps", refused.value) == (
        "Could not attach to network apps: rpc error: code = PermissionDenied desc = "
        "network apps not manually attachable"
    )
    with pytest.raises(Forbidden, match=r"^network ingress not manually attachable$"):
        await client.attach(credentials, addrs, "ingress", "ctr1")
    with pytest.raises(NotFound) as missing:
        await client.attach(credentials, addrs, "nope", "ctr1")
    assert client.engine_message("nope", missing.value) == (
        "Could not attach to network nope: rpc error: code = NotFound desc = network nope not found"
    )
    # A body the manager cannot read is refused, naming the field.
    with pytest.raises(InvalidSpec, match="ContainerID"):
        await client._call(credentials, addrs, "POST", ATTACHMENTS_PATH, {"Target": "dc"})
    assert not [task for task in allocated.store.all(Task) if task.is_attachment]


async def test_a_node_cannot_detach_another_nodes_container(
    allocated: Manager, tmp_path: Path
) -> None:
    _, first = await joined(allocated, tmp_path / "n2")
    _, second = await joined(allocated, tmp_path / "n3")
    addrs = [allocated.addr]
    info = await client.attach(first, addrs, "dc", "ctr1")
    with pytest.raises(Forbidden, match="doesn't belong to this node"):
        await client.detach(second, addrs, info.id)
    assert await client.list_attachments(second, addrs) == []
    assert allocated.store.find(Task, info.id) is not None


async def test_a_removed_node_is_refused(allocated: Manager, tmp_path: Path) -> None:
    node_id, credentials = await joined(allocated, tmp_path / "n2")
    await allocated.store.commit([Op.delete(allocated.store.get(Node, node_id))])
    with pytest.raises(Forbidden, match="is not a member of this swarm"):
        await client.attach(credentials, [allocated.addr], "dc", "ctr1")
    with pytest.raises(Forbidden):
        await client.list_attachments(credentials, [allocated.addr])


async def test_managers_that_do_not_answer_are_passed_over(
    allocated: Manager, tmp_path: Path
) -> None:
    _, credentials = await joined(allocated, tmp_path / "n2")
    closed = f"127.0.0.1:{free_port()}"
    info = await client.attach(credentials, [closed, allocated.addr], "dc", "ctr1")
    assert isinstance(info, AttachmentInfo)
    with pytest.raises(Unavailable, match="could not reach a manager"):
        await client.list_attachments(credentials, [closed])


async def test_no_address_in_20_seconds_is_swarms_timeout(tmp_path: Path) -> None:
    manager = await Manager.create(tmp_path)
    clock = FakeClock()
    # No allocator runs: nothing gives the address. The wait is on a fake clock.
    manager.attachments = Attachments(manager.store, clock)
    await manager.store.commit([Op.create(network) for network in networks()])
    await manager.start()
    try:
        _, credentials = await joined(manager, tmp_path / "n2")
        asking = asyncio.create_task(client.attach(credentials, [manager.addr], "dc", "ctr1"))
        await eventually(lambda: [t for t in manager.store.all(Task) if t.is_attachment])
        await clock.advance(20)
        with pytest.raises(Unavailable) as failed:
            await asking
        message = ATTACH_FAILED.format("context deadline exceeded")
        assert failed.value.message == message
        assert client.engine_message("dc", failed.value) == message
        assert not [task for task in manager.store.all(Task) if task.is_attachment]
    finally:
        await manager.stop()
