"""An in-memory engine for tests: images, containers and processes whose fate the test decides.

An image says how its containers' processes behave: exit at once with a code, or run until
the test calls ``exit()`` or the agent stops them. Stopping honours the container's stop signal
and grace period on the injected clock, so a test with a ``FakeClock`` can watch a stop wait.
Tests assert on the resulting containers (``engine.containers``), not on call counts.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from swarmlet.agent.engine import ContainerInfo, ContainerSummary
from swarmlet.agent.logframes import LogFrame
from swarmlet.clock import Clock, SystemClock
from swarmlet.errors import EngineError, NotFound, SwarmletError
from swarmlet.ids import new_id

DEFAULT_STOP_TIMEOUT = 10


@dataclass(frozen=True)
class FakeImage:
    # None: the process runs until it is told to exit or is stopped.
    exit_code: int | None = None
    # A process that ignores its stop signal dies only by SIGKILL, after the grace period.
    ignores_stop_signal: bool = False
    # The image has a HEALTHCHECK: its containers' health is "starting" once they start, until
    # the test says otherwise (``set_health``).
    healthcheck: bool = False


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    state: str = "created"
    pid: int = 0
    exit_code: int = 0
    # How the last stop was asked for: (signal, grace seconds).
    stopped_with: tuple[str, int] | None = None
    # State.Health.Status: "" without a healthcheck.
    health: str = ""
    _exited: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    def info(self) -> ContainerInfo:
        return ContainerInfo(
            id=self.id,
            name=self.name,
            state=self.state,
            labels=self.labels,
            pid=self.pid,
            exit_code=self.exit_code,
            health=self.health,
        )

    def has_healthcheck(self, image: FakeImage) -> bool:
        """The engine's rule: the container's own ``Healthcheck.Test`` unless it is empty
        (then the image's); ``["NONE"]`` turns it off."""
        test = (self.config.get("Healthcheck") or {}).get("Test") or []
        if test:
            return bool(test[0] != "NONE")
        return image.healthcheck


def normalize(ref: str) -> str:
    """``busybox`` and ``busybox:latest`` are the same image."""
    if "@" in ref:
        return ref
    _, sep, tag = ref.rpartition(":")
    return ref if sep and "/" not in tag else f"{ref}:latest"


class FakeEngine:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.images: dict[str, FakeImage] = {}  # present locally
        self.registry: dict[str, FakeImage] = {}  # what a pull can fetch
        self.pulled: list[str] = []
        self.containers: dict[str, FakeContainer] = {}
        # The next call of the named method raises this error (once).
        self.failures: dict[str, SwarmletError] = {}
        self.info_data: dict[str, Any] = {
            "Architecture": "x86_64",
            "OSType": "linux",
            "NCPU": 4,
            "MemTotal": 8 * 1024**3,
            "ServerVersion": "20.10.24",
            "Labels": [],
        }
        self._pids = itertools.count(1000)
        # What each container has written (container_logs), by ID: (stream, time, bytes).
        self.logs: dict[str, list[tuple[int, datetime, bytes]]] = {}
        # Set (and replaced) whenever a container writes or exits: what a follower waits on.
        self._logged = asyncio.Event()
        # The open health streams (watch_health) of each container, by ID.
        self._health_watchers: dict[str, list[asyncio.Queue[str | None]]] = {}

    # -- what tests use ---------------------------------------------------------------------

    def add_image(self, ref: str, exit_code: int | None = None, **behaviour: bool) -> None:
        self.images[normalize(ref)] = FakeImage(exit_code=exit_code, **behaviour)

    def add_registry_image(self, ref: str, exit_code: int | None = None, **behaviour: bool) -> None:
        self.registry[normalize(ref)] = FakeImage(exit_code=exit_code, **behaviour)

    def container(self, ref: str) -> FakeContainer:
        """A container by ID or name."""
        found = self.containers.get(ref) or next(
            (c for c in self.containers.values() if c.name == ref.lstrip("/")), None
        )
        if found is None:
            raise NotFound(f"No such container: {ref}")
        return found

    def exit(self, ref: str, code: int) -> None:
        """The container's process exits now with ``code``."""
        container = self.container(ref)
        if container.state == "running":
            self._exit(container, code)

    def set_health(self, ref: str, health: str, *, event: bool = True) -> None:
        """The container's health becomes ``health``; without ``event`` its event is lost
        (inspect says it, no stream does), as a subscriber can miss one."""
        container = self.container(ref)
        container.health = health
        if event:
            for queue in self._health_watchers.get(container.id, []):
                queue.put_nowait(health)

    def health_streams(self, ref: str) -> int:
        """How many health streams (``watch_health``) of the container are open."""
        return len(self._health_watchers.get(self.container(ref).id, []))

    def end_event_streams(self) -> None:
        """Every open event stream ends, as when the engine restarts."""
        for queues in self._health_watchers.values():
            for queue in queues:
                queue.put_nowait(None)

    def write_log(self, ref: str, data: bytes, stream: int = 1) -> None:
        """The container's process writes ``data`` (a line, its newline included) now."""
        container = self.container(ref)
        self.logs.setdefault(container.id, []).append((stream, self.clock.now(), data))
        self._wake_log_readers()

    def run_container(self, name: str, image: str, labels: Mapping[str, str]) -> FakeContainer:
        """A running container made outside the agent (e.g. by a previous agent process)."""
        container = FakeContainer(
            id=new_id(), name=name, image=image, config={"Labels": dict(labels)}, host_config={}
        )
        self.containers[container.id] = container
        container.state, container.pid = "running", next(self._pids)
        return container

    # -- the Engine protocol ----------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        self._maybe_fail("info")
        return dict(self.info_data)

    async def inspect_image(self, ref: str) -> dict[str, Any]:
        self._maybe_fail("inspect_image")
        if normalize(ref) not in self.images:
            raise NotFound(f"no such image: {ref}: No such image: {ref}")
        return {"Id": f"sha256:{normalize(ref)}", "RepoTags": [normalize(ref)]}

    async def pull_image(self, ref: str) -> None:
        self._maybe_fail("pull_image")
        await asyncio.sleep(0)
        image = self.registry.get(normalize(ref))
        if image is None:
            raise EngineError(f"pull access denied for {ref}, repository does not exist", 404)
        self.pulled.append(ref)
        self.images[normalize(ref)] = image

    async def create_container(
        self, name: str, config: Mapping[str, Any], host_config: Mapping[str, Any]
    ) -> str:
        self._maybe_fail("create_container")
        await asyncio.sleep(0)
        image = str(config.get("Image", ""))
        if normalize(image) not in self.images:
            raise NotFound(f"No such image: {image}")
        for other in self.containers.values():
            if other.name == name:
                raise EngineError(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{other.id}". You have to remove (or rename) that container to be able '
                    "to reuse that name.",
                    409,
                )
        container = FakeContainer(
            id=new_id(), name=name, image=image, config=dict(config), host_config=dict(host_config)
        )
        self.containers[container.id] = container
        return container.id

    async def start_container(self, container_id: str) -> None:
        self._maybe_fail("start_container")
        await asyncio.sleep(0)
        container = self.container(container_id)
        if container.state == "running":
            return
        container.state, container.pid = "running", next(self._pids)
        container._exited.clear()
        behaviour = self.images.get(normalize(container.image), FakeImage())
        container.health = "starting" if container.has_healthcheck(behaviour) else ""
        if behaviour.exit_code is not None:
            self._exit(container, behaviour.exit_code)

    async def wait_container(self, container_id: str) -> int:
        self._maybe_fail("wait_container")
        container = self.container(container_id)
        if container.state == "running":
            await container._exited.wait()
        if container.id not in self.containers:
            raise NotFound(f"No such container: {container_id}")
        return container.exit_code

    async def inspect_container(self, container_id: str) -> ContainerInfo:
        self._maybe_fail("inspect_container")
        return self.container(container_id).info()

    async def stop_container(self, container_id: str, grace: int | None = None) -> None:
        self._maybe_fail("stop_container")
        container = self.container(container_id)
        stop_signal = str(container.config.get("StopSignal") or "SIGTERM")
        if grace is None:
            grace = int(container.config.get("StopTimeout") or DEFAULT_STOP_TIMEOUT)
        container.stopped_with = (stop_signal, grace)
        if container.state != "running":
            return
        behaviour = self.images.get(normalize(container.image), FakeImage())
        if not behaviour.ignores_stop_signal:
            self._exit(container, 128 + _signal_number(stop_signal))
            return
        # The process ignores the signal: it dies by SIGKILL when the grace period ends, unless
        # it exits by itself first.
        waiter = asyncio.ensure_future(container._exited.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(grace))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)
        if container.state == "running":
            self._exit(container, 128 + signal.SIGKILL.value)

    async def remove_container(self, container_id: str, force: bool = True) -> None:
        self._maybe_fail("remove_container")
        container = self.container(container_id)
        if container.state == "running" and not force:
            raise EngineError(f"You cannot remove a running container {container.id}", 409)
        del self.containers[container.id]
        if container.state == "running":
            self._exit(container, 137)

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        self._maybe_fail("list_containers")
        return [
            ContainerSummary(id=c.id, name=c.name, state=c.state, labels=c.labels)
            for c in self.containers.values()
            if all(c.labels.get(k) == v for k, v in labels.items())
        ]

    async def watch_health(self, container_id: str) -> AsyncIterator[str]:
        self._maybe_fail("watch_health")
        container = self.container(container_id)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        watchers = self._health_watchers.setdefault(container.id, [])
        watchers.append(queue)
        try:
            yield container.health
            while (health := await queue.get()) is not None:
                yield health
        finally:
            watchers.remove(queue)

    async def container_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: str, streams: str
    ) -> AsyncGenerator[list[LogFrame], None]:
        self._maybe_fail("container_logs")
        container = self.container(container_id)
        wanted = {n for name, n in (("stdout", 1), ("stderr", 2)) if name in streams}
        bound = float(since) if since else None

        def frames(lines: list[tuple[int, datetime, bytes]]) -> list[LogFrame]:
            return [
                LogFrame(stream, f"{stamp(when)}  ".encode() + data)
                for stream, when, data in lines
                if stream in wanted and (bound is None or when.timestamp() >= bound)
            ]

        lines = self.logs.get(container.id, [])
        seen = len(lines)
        first = frames(lines)
        if tail is not None:
            first = first[len(first) - tail :] if tail else []
        if first:
            yield first
        while follow and container.state == "running":
            await self._logged.wait()
            lines = self.logs.get(container.id, [])
            fresh, seen = frames(lines[seen:]), len(lines)
            if fresh:
                yield fresh

    # -- plumbing ---------------------------------------------------------------------------

    def _exit(self, container: FakeContainer, code: int) -> None:
        container.state, container.pid, container.exit_code = "exited", 0, code
        container._exited.set()
        self._wake_log_readers()

    def _wake_log_readers(self) -> None:
        self._logged.set()
        self._logged = asyncio.Event()

    def _maybe_fail(self, method: str) -> None:
        error = self.failures.pop(method, None)
        if error is not None:
            raise error


def stamp(when: datetime) -> str:
    """The engine's log timestamp: RFC 3339, nanoseconds, fixed width, in UTC."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _signal_number(name: str) -> int:
    if name.isdigit():
        return int(name)
    name = name.upper()
    return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"].value
