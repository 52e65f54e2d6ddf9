"""Network attachments: plain containers on attachable overlay networks (``docker run
--network``), on the manager's port.

When a host's engine asks its IPAM plugin for a container's address on an overlay network,
the host's agent asks the manager here, with its node's certificate, and waits for the answer.
As in SwarmKit (``manager/resourceapi``), an attachment is a task: ``NodeID`` the calling node,
no service, ``Spec.NetworkAttachmentSpec.ContainerID`` the container, one network in
``Spec.Networks``, desired RUNNING, and status NEW "created". The allocator gives it its address
(NEW → PENDING) as it gives any task one; the manager then marks it RUNNING ("started") itself:
no worker runs it, and the orchestrators, the scheduler and the assignments leave it alone.
Deleting the task frees the address (the allocator rebuilds its pools from what the store
holds). The task reaper deletes the attachments of a node removed from the swarm.

Errors are SwarmKit's words: ``network NAME not found`` (404), ``network NAME not manually
attachable`` (403; ``ingress`` never is), ``attachment ID not found``, ``attachment ID doesn't
belong to this node``; an address not given within 20 s (moby's ``swarmRequestTimeout``) is
moby's ``attaching to network failed, ...`` (504), and the task is deleted again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from aiohttp import web

from swarmlet.api.errors import error_response
from swarmlet.clock import Clock
from swarmlet.errors import Forbidden, NotFound, SwarmletError
from swarmlet.ids import new_id
from swarmlet.manager.api.lookup import resolve
from swarmlet.manager.ca import CertificateAuthority
from swarmlet.manager.ca.server import peer_of
from swarmlet.manager.store import Store, Tx, Watch
from swarmlet.models import (
    Network,
    NetworkAttachmentConfig,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.models.service import NetworkAttachmentSpec
from swarmlet.protocol import ATTACHMENTS_PATH, AttachmentInfo, AttachRequest

log = logging.getLogger(__name__)

# moby's swarmRequestTimeout: how long an attach waits for the manager's answer.
ATTACH_TIMEOUT = 20.0
CREATED_MESSAGE = "created"
# What an agent's task controller says when a task starts: what SwarmKit's attachment shows.
STARTED_MESSAGE = "started"
ATTACH_FAILED = (
    "attaching to network failed, make sure your network options are correct and check "
    "manager logs: {}"
)
DEADLINE_EXCEEDED = "context deadline exceeded"


class AttachFailed(SwarmletError):
    """The attachment did not get its address in time (or was removed meanwhile)."""


# Decisions, without I/O.


def find_network(ref: str, networks: Sequence[Network]) -> Network:
    """The network a user's reference names (ID, name, then a unique ID prefix), if a plain
    container may join it. Raises NotFound, or Forbidden for one that is not attachable."""
    network = resolve("network", ref, networks, lambda n: (n.name,))
    if network.ingress or not network.attachable:
        raise Forbidden(f"network {ref} not manually attachable")
    return network


def new_attachment(
    task_id: str, node_id: str, network: Network, request: AttachRequest, now: datetime
) -> Task:
    return Task(
        id=task_id,
        # Not in SwarmKit's attachment (it has no name): the container's, for the DNS.
        name=request.name or None,
        service_id="",
        node_id=node_id,
        spec=TaskSpec(
            network_attachment_spec=NetworkAttachmentSpec(container_id=request.container_id),
            networks=[
                NetworkAttachmentConfig(target=network.id, aliases=list(request.aliases) or None)
            ],
        ),
        status=TaskStatus(state=TaskState.NEW, message=CREATED_MESSAGE, timestamp=now),
        desired_state=TaskState.RUNNING,
    )


def container_of(task: Task) -> str:
    spec = task.spec.network_attachment_spec
    return spec.container_id if spec is not None else ""


def network_of(task: Task) -> str:
    return task.spec.networks[0].target if task.spec.networks else ""


def address_of(task: Task) -> str:
    """The attachment's address (CIDR), '' until the allocator has given it."""
    for attachment in task.networks_attachments:
        if attachment.network.id == network_of(task) and attachment.addresses:
            return attachment.addresses[0]
    return ""


def attachments_of(node_id: str, tasks: Iterable[Task]) -> list[Task]:
    """The node's attachments, by ID (``tasks``: the node's tasks)."""
    mine = (task for task in tasks if task.is_attachment and task.node_id == node_id)
    return sorted(mine, key=lambda task: task.id)


def existing(tasks: Iterable[Task], container_id: str, network_id: str) -> Task | None:
    """The attachment already made for this container on this network (``tasks``: the
    node's attachments)."""
    for task in tasks:
        if container_of(task) == container_id and network_of(task) == network_id:
            return task
    return None


def info(task: Task) -> AttachmentInfo:
    return AttachmentInfo(
        id=task.id,
        network=network_of(task),
        address=address_of(task),
        container_id=container_of(task),
    )


# The manager's side.


class Attachments:
    """Makes, waits on, lists and deletes the network attachments of nodes."""

    def __init__(self, store: Store, clock: Clock, timeout: float = ATTACH_TIMEOUT) -> None:
        self._store = store
        self._clock = clock
        self._timeout = timeout

    def of_node(self, node_id: str) -> list[Task]:
        return attachments_of(node_id, self._store.tasks_of_node(node_id))

    async def attach(self, node_id: str, request: AttachRequest) -> Task:
        """The node's attachment of a container to a network, RUNNING with its address: the
        one already made for the same container and network, or a new one.

        Raises NotFound or Forbidden (see ``find_network``), AttachFailed when no address
        comes within the timeout (the new task is deleted again).
        """
        store = self._store
        new_task_id, now = new_id(), self._clock.now()

        def attachment(tx: Tx) -> tuple[Task, Network, bool]:
            """The attachment already made, or a new one: (it, its network, whether new)."""
            network = find_network(request.target, tx.all(Network))
            mine = attachments_of(node_id, tx.tasks_of_node(node_id))
            task = existing(mine, request.container_id, network.id)
            if task is not None:
                return task, network, False
            task = new_attachment(new_task_id, node_id, network, request, now)
            tx.create(task)
            return task, network, True

        # Subscribed before the task is made: no write of the allocator is missed.
        watch = store.watch()
        try:
            task, network, made = (await store.update(attachment)).value
            if made:
                log.info(
                    "node %s: attachment %s of container %s to network %s",
                    node_id,
                    task.id,
                    request.container_id,
                    network.name,
                )
            try:
                return await self._started(task.id, watch)
            except AttachFailed:
                if made:
                    await self._delete(task.id)
                raise
            except asyncio.CancelledError:
                # The asker went away: the attachment it would have had is not left holding
                # an address (an attachment others wait on too is theirs to finish).
                if made:
                    await self._delete(task.id, unless_running=True)
                raise
        finally:
            watch.close()

    async def _started(self, task_id: str, watch: Watch) -> Task:
        """Wait until the allocator has given the task its address, then mark it RUNNING."""
        deadline = self._clock.monotonic() + self._timeout

        def start(tx: Tx) -> Task | None:
            """The task as it is, marked RUNNING once it has its address."""
            task = tx.find(Task, task_id)
            if (
                task is not None
                and task.state != TaskState.RUNNING
                and task.state >= TaskState.PENDING
                and address_of(task)
            ):
                status = TaskStatus(
                    state=TaskState.RUNNING, message=STARTED_MESSAGE, timestamp=self._clock.now()
                )
                tx.update(task.replace(status=status))
            return task

        while True:
            commit = await self._store.update(start)
            if commit.objects:
                running = commit.objects[0]
                assert isinstance(running, Task)
                return running
            task = commit.value
            if task is None:
                raise AttachFailed(ATTACH_FAILED.format(f"attachment {task_id} was removed"))
            if task.state == TaskState.RUNNING:
                return task
            left = deadline - self._clock.monotonic()
            if left <= 0:
                why = task.status.err or DEADLINE_EXCEEDED
                log.warning("attachment %s got no address in time: %s", task_id, why)
                raise AttachFailed(ATTACH_FAILED.format(why))
            await _changes_or_timeout(watch, self._clock, left)

    async def detach(self, node_id: str, attachment_id: str) -> None:
        """Delete the node's own attachment. Raises NotFound, or Forbidden for another
        node's."""

        def delete(tx: Tx) -> None:
            task = tx.find(Task, attachment_id)
            if task is None or not task.is_attachment:
                raise NotFound(f"attachment {attachment_id} not found")
            if task.node_id != node_id:
                raise Forbidden(f"attachment {attachment_id} doesn't belong to this node")
            tx.delete(task)

        await self._store.update(delete)

    async def _delete(self, task_id: str, *, unless_running: bool = False) -> None:
        """Delete the task as it is now; gone already is fine."""

        def delete(tx: Tx) -> None:
            task = tx.find(Task, task_id)
            if task is not None and not (unless_running and task.state == TaskState.RUNNING):
                tx.delete(task)

        await self._store.update(delete)


async def _changes_or_timeout(watch: Watch, clock: Clock, seconds: float) -> None:
    """Return after the next commit the watch sees, or ``seconds`` on ``clock``."""
    getter = asyncio.ensure_future(watch.next())
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        getter.cancel()
        sleeper.cancel()
        await asyncio.wait({getter, sleeper})
    watch.drain()  # the store is read again: the events themselves are not needed


# The routes.


def attachment_routes(
    attachments: Attachments, authority: CertificateAuthority
) -> list[web.RouteDef]:
    """POST, GET ATTACHMENTS_PATH and DELETE ATTACHMENTS_PATH/{id}, for the node whose
    certificate is presented (no certificate, or a removed node's: 403)."""

    async def attach(request: web.Request) -> web.Response:
        node = authority.admit(peer_of(request))
        body = AttachRequest.model_validate_json(await request.read())
        try:
            task = await attachments.attach(node.id, body)
        except AttachFailed as exc:
            return error_response(504, exc.message)
        return web.json_response(info(task).to_api(), status=201)

    async def detach(request: web.Request) -> web.Response:
        node = authority.admit(peer_of(request))
        await attachments.detach(node.id, request.match_info["id"])
        return web.Response(status=204)

    async def listing(request: web.Request) -> web.Response:
        node = authority.admit(peer_of(request))
        return web.json_response([info(task).to_api() for task in attachments.of_node(node.id)])

    return [
        web.post(ATTACHMENTS_PATH, attach),
        web.get(ATTACHMENTS_PATH, listing),
        web.delete(ATTACHMENTS_PATH + "/{id}", detach),
    ]
