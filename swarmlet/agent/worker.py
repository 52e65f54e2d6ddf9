"""The worker: reconciles the tasks assigned to this node with the containers on its engine.

Every ``assign`` hands it the full set of the node's tasks. It keeps one ``TaskController`` per
task that still has something to do, hands each newer assignment to its controller, and removes
the containers of tasks that are no longer assigned, and the files of their secrets and configs.
At start it adopts the containers labelled with this node's ID (a restarted agent keeps its
tasks running); those whose task is not assigned are removed, but only once the first
assignment has said what is.

Status updates are reported in batches: whatever happens within ``BATCH_WINDOW`` goes out
together, the latest status of each task only (as SwarmKit's reporter). If the report fails
(the session is down) the worker carries on; the session resends ``statuses()`` — the last
status of every assigned task — when it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from swarmlet.agent import executor
from swarmlet.agent.devices import NO_DEVICES, NodeDevices
from swarmlet.agent.engine import ContainerInfo, Engine
from swarmlet.agent.executor import LABEL_NODE_ID, LABEL_TASK_ID
from swarmlet.agent.networking import TaskNetworking
from swarmlet.agent.task_controller import RETRY_INITIAL, RETRY_MAX, TaskController
from swarmlet.agent.task_files import TaskFiles
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.models import NodeDescription, Task, TaskState, TaskStatus
from swarmlet.protocol import StatusUpdate

log = logging.getLogger(__name__)

BATCH_WINDOW = 0.05  # seconds
NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass
class _Running:
    controller: TaskController
    job: asyncio.Task[None]


def needs_controller(task: Task) -> bool:
    """A task already terminal in its assignment has nothing left to do, unless the manager
    wants its container removed."""
    return not task.state.is_terminal or task.desired_state >= TaskState.REMOVE


class Worker:
    def __init__(
        self,
        engine: Engine,
        node_id: str,
        report: Callable[[list[StatusUpdate]], Awaitable[None]],
        clock: Clock,
        container_labels: Mapping[str, str] = NO_LABELS,
        networking: TaskNetworking | None = None,
        files: TaskFiles | None = None,
        devices: NodeDevices = NO_DEVICES,
        node: Callable[[], NodeDescription | None] | None = None,
    ) -> None:
        self._engine = engine
        self._devices = devices
        # The node's last description (its hostname and platform, for templates).
        self._node = node
        self._networking = networking
        self._files = files
        self._node_id = node_id
        self._report = report
        self._clock = clock
        self._container_labels = dict(container_labels)
        # None until the first assign: before it, the worker does not know what is its own.
        self._assigned: dict[str, Task] | None = None
        self._dirty = asyncio.Event()
        self._controllers: dict[str, _Running] = {}
        self._adopted: dict[str, ContainerInfo] = {}
        self._removals: dict[str, asyncio.Task[None]] = {}  # by container name
        self._statuses: dict[str, StatusUpdate] = {}
        self._pending: dict[str, StatusUpdate] = {}
        self._has_pending = asyncio.Event()

    def statuses(self) -> list[StatusUpdate]:
        """The last status of every assigned task this worker has moved: what the session
        resends after a reconnect."""
        return list(self._statuses.values())

    async def assign(self, tasks: Sequence[Task]) -> None:
        """The full set of tasks assigned to this node (replaces the previous set)."""
        self._assigned = {task.id: task for task in tasks}
        self._dirty.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send_loop(), name="worker-report")
            await self._adopt()
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                await self._reconcile(group)

    # -- reconciling ------------------------------------------------------------------------

    async def _adopt(self) -> None:
        """Find the containers an earlier agent made on this node."""
        retry = RETRY_INITIAL
        while True:
            try:
                found = await self._engine.list_containers({LABEL_NODE_ID: self._node_id})
                for summary in found:
                    task_id = summary.labels.get(LABEL_TASK_ID)
                    if task_id:
                        self._adopted[task_id] = await self._engine.inspect_container(summary.id)
                break
            except SwarmletError as exc:
                # Nothing can run without the engine: wait for it rather than guess.
                log.warning("listing this node's containers: %s; retrying", exc.message)
                self._adopted.clear()
                await self._clock.sleep(retry)
                retry = min(retry * 2, RETRY_MAX)
        if self._adopted:
            log.info("found %d containers of this node's tasks", len(self._adopted))

    async def _reconcile(self, group: asyncio.TaskGroup) -> None:
        assigned = self._assigned
        assert assigned is not None  # only an assign marks the worker dirty
        for task_id in [t for t in self._controllers if t not in assigned]:
            gone = self._controllers.pop(task_id)
            gone.job.cancel()  # now, so that it reports nothing more
            self._start_removal(
                group, gone.controller.container_name, after=gone.job, task=gone.controller.task
            )
        for task in assigned.values():
            running = self._controllers.get(task.id)
            if running is not None:
                running.controller.update(task)
                continue
            adopted = self._adopted.pop(task.id, None)
            if needs_controller(task):
                self._start_controller(group, task, adopted)
        for task_id in [t for t in self._statuses if t not in assigned]:
            del self._statuses[task_id]
            self._pending.pop(task_id, None)
        self._adopted.clear()  # what was not claimed now is not assigned: the sweep removes it
        if self._files is not None:
            # A task's secrets and configs are its controller's while it has one; those of a
            # task unassigned (whose container goes now) or ended before a restart go here.
            await self._files.retain(self._controllers.keys())
        await self._sweep(group, assigned)

    def _start_controller(
        self, group: asyncio.TaskGroup, task: Task, adopted: ContainerInfo | None
    ) -> None:
        def report(status: TaskStatus, task_id: str = task.id) -> None:
            if task_id in self._controllers:
                self._record(StatusUpdate(task_id=task_id, status=status))

        controller = TaskController(
            task,
            self._engine,
            self._clock,
            report,
            node_id=self._node_id,
            container_labels=self._container_labels,
            adopted=adopted,
            networking=self._networking,
            files=self._files,
            devices=self._devices,
            node=self._node() if self._node is not None else None,
        )
        job = group.create_task(controller.run(), name=f"task-{task.id}")
        self._controllers[task.id] = _Running(controller, job)

    async def _sweep(self, group: asyncio.TaskGroup, assigned: Mapping[str, Task]) -> None:
        """Remove this node's containers whose task is not assigned."""
        try:
            found = await self._engine.list_containers({LABEL_NODE_ID: self._node_id})
        except SwarmletError as exc:
            log.warning("listing this node's containers: %s", exc.message)
            return
        for summary in found:
            if summary.labels.get(LABEL_TASK_ID) not in assigned:
                self._start_removal(group, summary.name)

    def _start_removal(
        self,
        group: asyncio.TaskGroup,
        container: str,
        after: asyncio.Task[None] | None = None,
        task: Task | None = None,
    ) -> None:
        if container not in self._removals:
            self._removals[container] = group.create_task(
                self._remove(container, after, task), name=f"remove-{container}"
            )

    async def _remove(
        self, container: str, after: asyncio.Task[None] | None, task: Task | None
    ) -> None:
        try:
            if after is not None:
                # Its controller first, so that it does not start what is being removed.
                await cancel_and_wait(after)
            # Gracefully, with the container's own stop signal and StopTimeout (the task's).
            await executor.stop(self._engine, container, None)
            await executor.remove(self._engine, container)
            log.info("removed container %s: its task is no longer assigned", container)
            if task is not None and task.networks_attachments and self._networking is not None:
                # Its controller may have been cancelled before it released the namespace.
                await self._networking.detach(task)
        except SwarmletError as exc:
            log.warning("removing container %s: %s (retried at the next sweep)", container, exc)
        finally:
            self._removals.pop(container, None)

    # -- reporting --------------------------------------------------------------------------

    def _record(self, update: StatusUpdate) -> None:
        self._statuses[update.task_id] = update
        self._pending[update.task_id] = update
        self._has_pending.set()

    async def _send_loop(self) -> None:
        while True:
            await self._has_pending.wait()
            await self._clock.sleep(BATCH_WINDOW)
            self._has_pending.clear()
            batch, self._pending = list(self._pending.values()), {}
            if not batch:
                continue
            try:
                await self._report(batch)
            except Exception as exc:
                # The session is down: keep them; they go with the next batch, and the session
                # resends statuses() when it is back.
                log.info("reporting %d task statuses failed: %s", len(batch), exc)
                for update in batch:
                    self._pending.setdefault(update.task_id, update)
