"""The agent's side of ``docker service logs``: read this node's task containers' logs from its
engine and send them to the manager on the session.

The manager sends a ``LogsSubscribe`` (services or tasks, and the engine's options); the
publisher finds this node's containers of them by their labels, reads each one's logs and sends
them in ``LogsBatch`` messages as they come (a batch per chunk the engine gives), then a
``LogsDone``. Following, it looks for new containers of the subscription every
``FOLLOW_POLL`` seconds (new tasks, started after the subscription) and never says done; the
manager's ``LogsCancel``, or the session's end, stops it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Literal, Protocol

from swarmlet.agent.engine import ContainerSummary
from swarmlet.agent.executor import LABEL_NODE_ID, LABEL_SERVICE_ID, LABEL_TASK_ID
from swarmlet.agent.logframes import STDERR, STDOUT, LogFrame, parse_message
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.errors import NotFound, SwarmletError
from swarmlet.protocol import (
    LogEntry,
    LogsBatch,
    LogsCancel,
    LogsDone,
    LogsSubscribe,
    Message,
)

log = logging.getLogger(__name__)

FOLLOW_POLL = 1.0  # seconds
# The most entries one message carries (the engine's chunks are split beyond it).
BATCH_ENTRIES = 500
_STREAMS: dict[int, Literal["stdout", "stderr"]] = {STDOUT: "stdout", STDERR: "stderr"}


class LogSource(Protocol):
    """The engine calls the publisher makes (``EngineClient``, ``FakeEngine``)."""

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]: ...

    def container_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: str, streams: str
    ) -> AsyncGenerator[list[LogFrame], None]: ...


class _Gone(Exception):
    """The session the subscription came on is closed (not an OSError: the engine client
    would take one raised inside its stream for its own)."""


def entries(frames: list[LogFrame], labels: Mapping[str, str]) -> list[LogEntry]:
    """The engine's frames as log entries of the container's task (its daemon's own error
    frames are left out)."""
    task_id = labels.get(LABEL_TASK_ID, "")
    service_id = labels.get(LABEL_SERVICE_ID, "")
    found = []
    for frame in frames:
        stream = _STREAMS.get(frame.stream)
        if stream is None:
            continue
        message = parse_message(frame.data)
        found.append(
            LogEntry(
                task_id=task_id,
                service_id=service_id,
                stream=stream,
                timestamp=message.timestamp,
                attrs=list(message.attrs),
                data=base64.b64encode(message.text).decode("ascii"),
            )
        )
    return found


def selectors(subscription: LogsSubscribe, node_id: str) -> list[dict[str, str]]:
    """The label sets of this node's containers the subscription wants."""
    wanted = [(LABEL_SERVICE_ID, s) for s in subscription.service_ids]
    wanted += [(LABEL_TASK_ID, t) for t in subscription.task_ids]
    return [{LABEL_NODE_ID: node_id, key: value} for key, value in wanted]


class LogPublisher:
    def __init__(
        self,
        engine: LogSource,
        node_id: str,
        send: Callable[[Message], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self._engine = engine
        self._node_id = node_id
        self._send = send
        self._clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}

    def handle(self, message: LogsSubscribe | LogsCancel) -> None:
        """A message of the manager's, on the session."""
        old = self._running.pop(message.id, None)
        if old is not None:
            old.cancel()
        if isinstance(message, LogsSubscribe):
            job = asyncio.create_task(self._serve(message), name=f"logs-{message.id}")
            self._running[message.id] = job
            job.add_done_callback(lambda done: self._forget(message.id, done))

    def session_ended(self) -> None:
        """The session closed: its subscriptions are gone with it (the manager sends those
        still wanted again on the next one)."""
        for job in self._running.values():
            job.cancel()
        self._running.clear()

    async def run(self) -> None:
        """Nothing to do but end the subscriptions when the agent stops."""
        try:
            await asyncio.Event().wait()
        finally:
            for job in list(self._running.values()):
                await cancel_and_wait(job)
            self._running.clear()

    def _forget(self, subscription_id: str, done: asyncio.Task[None]) -> None:
        if self._running.get(subscription_id) is done:
            del self._running[subscription_id]

    async def _serve(self, subscription: LogsSubscribe) -> None:
        error = ""
        try:
            if subscription.follow:
                await self._follow(subscription)
            else:
                for container in await self._containers(subscription):
                    await self._read(subscription, container)
        except _Gone:
            return
        except SwarmletError as exc:
            error = exc.message
        with contextlib.suppress(_Gone):
            await self._deliver(LogsDone(id=subscription.id, error=error))

    async def _containers(self, subscription: LogsSubscribe) -> list[ContainerSummary]:
        found: dict[str, ContainerSummary] = {}
        for labels in selectors(subscription, self._node_id):
            for container in await self._engine.list_containers(labels):
                found.setdefault(container.id, container)
        return list(found.values())

    async def _read(self, subscription: LogsSubscribe, container: ContainerSummary) -> None:
        streams = ",".join(
            name
            for name, wanted in (("stdout", subscription.stdout), ("stderr", subscription.stderr))
            if wanted
        )
        logs = self._engine.container_logs(
            container.id,
            follow=subscription.follow,
            tail=subscription.tail,
            since=subscription.since,
            streams=streams,
        )
        try:
            async with contextlib.aclosing(logs):
                async for frames in logs:
                    found = entries(frames, container.labels)
                    for start in range(0, len(found), BATCH_ENTRIES):
                        batch = found[start : start + BATCH_ENTRIES]
                        await self._deliver(LogsBatch(id=subscription.id, entries=batch))
        except NotFound:
            return  # removed since it was listed: nothing to read

    async def _follow(self, subscription: LogsSubscribe) -> None:
        """Read every container of the subscription, and those that appear later, until
        cancelled."""
        followed: set[str] = set()
        async with asyncio.TaskGroup() as group:
            while True:
                try:
                    containers = await self._containers(subscription)
                except SwarmletError as exc:
                    log.info("logs %s: listing containers: %s", subscription.id, exc.message)
                    containers = []
                for container in containers:
                    if container.id not in followed:
                        followed.add(container.id)
                        group.create_task(
                            self._follow_one(subscription, container),
                            name=f"logs-{subscription.id}-{container.id[:12]}",
                        )
                await self._clock.sleep(FOLLOW_POLL)

    async def _follow_one(self, subscription: LogsSubscribe, container: ContainerSummary) -> None:
        try:
            await self._read(subscription, container)
        except _Gone:
            return  # the session's end cancels the whole subscription
        except SwarmletError as exc:
            # One container's logs lost (its engine stream broke): the others go on.
            log.info("logs of container %s: %s", container.id[:12], exc.message)

    async def _deliver(self, message: Message) -> None:
        try:
            await self._send(message)
        except ConnectionError as exc:  # the session's SessionClosed
            raise _Gone(str(exc)) from exc
