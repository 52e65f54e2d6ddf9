"""One task's controller: moves its container forward one state at a time and reports each step.

``next_step`` is the decision, a pure function of where the task is and where the manager
wants it (SwarmKit's ``exec.Do``). ``TaskController`` carries out one step at a time with the
executor's driver functions and reports every new status, with Swarm's messages:

    ACCEPTED "accepted" → PREPARING "preparing" → READY "prepared" → STARTING "starting"
    → RUNNING "started" → COMPLETE "finished" | FAILED (err "task: non-zero exit (N)")

A failure before STARTING rejects the task, after it fails it; the message stays that of the
last step, and the error says why (as Swarm: ``Message: "preparing", Err: "No such image: …"``).
A task never goes backwards. While the engine is unreachable a step is retried, not failed:
that is no verdict on the task.

A container with a healthcheck (its spec's or its image's) keeps the task STARTING until the
engine says it is healthy; one that turns unhealthy, STARTING or RUNNING, is stopped with its
grace period and the task fails with Swarm's ``task: non-zero exit (N): dockerexec: unhealthy
container``. A RUNNING one first leaves the load balancer: it is reported RUNNING with the Err
``dockerexec: unhealthy container`` (the manager sends traffic only to RUNNING tasks without
an Err), and on networks it is stopped ``GOSSIP_CONVERGE_DELAY`` later, as Swarm's
``deactivateServiceBinding`` then sleep.

A task's secrets and configs are written on the agent's tmpfs (``TaskFiles``) just before its
container is created, and removed once the task is terminal; one that did not arrive with the
assignments rejects the task (``secret <id> not found``).

The task's spec is expanded for this node (its templates, docs/templates.md) before its
container is planned; one that does not expand here is rejected at once, as Swarm's
``resolving controller failed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum, auto
from typing import Any

from swarmlet.agent import executor
from swarmlet.agent.dependencies import uses_files
from swarmlet.agent.devices import NO_DEVICES, NodeDevices, with_devices
from swarmlet.agent.engine import ContainerInfo, Engine
from swarmlet.agent.health import Health, follow_health
from swarmlet.agent.host_ports import host_mode_ports, port_status
from swarmlet.agent.networking import TaskNetworking
from swarmlet.agent.task_files import TaskFiles
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.errors import EngineError, SwarmletError, Unavailable
from swarmlet.models import ContainerStatus, NodeDescription, Task, TaskState, TaskStatus
from swarmlet.models.task import PortStatus
from swarmlet.template import TemplateError
from swarmlet.template.expand import expand_task

log = logging.getLogger(__name__)

# Retries while the engine is unreachable, doubling up to the maximum.
RETRY_INITIAL = 0.5
RETRY_MAX = 10.0
# Between taking an unhealthy task on networks out of the load balancer and stopping it: time
# for every host to apply the change (Swarm's defaultGossipConvergeDelay).
GOSSIP_CONVERGE_DELAY = 2.0
# moby's ErrContainerUnhealthy.
ERR_UNHEALTHY = "dockerexec: unhealthy container"
# SwarmKit's exec.Resolve, when the task's controller cannot be made (a template that does
# not expand on this node).
RESOLVE_FAILED = "resolving controller failed"

# What every status a controller reports is made from, by ``replace``: a status is made for
# each step of each task (five on its way to RUNNING), and validating the values made here,
# of the right types already, was a fifth of a thousand simulated agents' time.
_NO_STATUS = TaskStatus()
_NO_CONTAINER_STATUS = ContainerStatus()


class Step(Enum):
    IDLE = auto()  # nothing to do until the desired state changes
    ACCEPT = auto()
    BEGIN_PREPARE = auto()
    PREPARE = auto()  # pull the image if needed, create the container
    BEGIN_START = auto()
    START = auto()
    AWAIT_HEALTH = auto()  # started, STARTING until healthy: wait for its health (or an exit)
    BEGIN_RUNNING = auto()  # started, healthy or without a healthcheck: report RUNNING
    STOP_UNHEALTHY = auto()  # unhealthy: out of the load balancer, then stop it
    AWAIT_EXIT = auto()  # running: wait for the process to exit (or a change)
    FINISH = auto()  # the process has exited: report how
    SHUTDOWN = auto()  # stop the container (kept) and report SHUTDOWN
    REMOVE = auto()  # remove the container


def next_step(
    state: TaskState,
    desired: TaskState,
    *,
    exited: bool,
    removed: bool,
    stale: bool = False,
    started: bool = False,
    health: Health = Health.NONE,
) -> Step:
    """What to do next for a task in ``state`` whose manager wants ``desired``.

    ``exited``: the task's process is known to have exited; ``removed``: its container is gone;
    ``stale``: the task was shut down while this agent was away (its container is removed too);
    ``started``: its container was started; ``health``: what the engine last said of it.
    """
    if desired >= TaskState.SHUTDOWN:
        if not state.is_terminal:
            return Step.SHUTDOWN
        if (desired >= TaskState.REMOVE or stale) and not removed:
            return Step.REMOVE
        return Step.IDLE
    if state.is_terminal:
        return Step.IDLE
    if exited:
        return Step.FINISH
    if health == Health.UNHEALTHY and (state == TaskState.RUNNING or started):
        return Step.STOP_UNHEALTHY
    if state == TaskState.RUNNING:
        # Even if the manager now wants READY, a running process is only ever waited on.
        return Step.AWAIT_EXIT
    if state == TaskState.STARTING and started:
        return Step.AWAIT_HEALTH if health == Health.STARTING else Step.BEGIN_RUNNING
    if state > desired:
        return Step.IDLE
    if state < TaskState.ACCEPTED:
        return Step.ACCEPT
    if state == TaskState.ACCEPTED:
        return Step.BEGIN_PREPARE
    if state == TaskState.PREPARING:
        return Step.PREPARE
    if state == TaskState.READY:
        # READY is where a task waits for a restart delay or a start-first update.
        return Step.BEGIN_START if desired > TaskState.READY else Step.IDLE
    return Step.START  # STARTING


def is_unreachable(exc: Exception) -> bool:
    return isinstance(exc, EngineError) and exc.status == 0


def exit_error(code: int, cause: str | None = None) -> str:
    """Swarm's Err of a task whose process exited ``code`` (with what caused it, if known)."""
    return f"task: non-zero exit ({code}): {cause}" if cause else f"task: non-zero exit ({code})"


@dataclass(frozen=True)
class _Exit:
    """How the task's process ended: an exit code, or an error from waiting on it."""

    code: int = 0
    error: str | None = None


class TaskController:
    """Runs one task (``run()``, until cancelled); ``update()`` hands it a newer assignment."""

    def __init__(
        self,
        task: Task,
        engine: Engine,
        clock: Clock,
        report: Callable[[TaskStatus], None],
        *,
        node_id: str,
        container_labels: Mapping[str, str] | None = None,
        adopted: ContainerInfo | None = None,
        networking: TaskNetworking | None = None,
        files: TaskFiles | None = None,
        devices: NodeDevices = NO_DEVICES,
        node: NodeDescription | None = None,
    ) -> None:
        self._engine = engine
        self._networking = networking if task.networks_attachments else None
        # An adopted task's namespace was made by an earlier agent: it is released the same way.
        self._attached = adopted is not None and self._networking is not None
        self._uses_files = uses_files(task)
        self._files = files
        # Its secrets and configs too: they are written before its container is created.
        self._files_written = adopted is not None and self._uses_files
        self._clock = clock
        self._report = report
        self._task = task
        self._status = task.status
        # The task as this node runs it: its spec's templates expanded for this node (as
        # SwarmKit's executor does when it makes the task's controller). One that does not
        # expand is rejected with the error, as Swarm's "resolving controller failed".
        self._expansion_error: str | None = None
        try:
            self._expanded = expand_task(node, task)
        except TemplateError as exc:
            self._expanded, self._expansion_error = task, exc.message
        self._plan = executor.plan_container(self._expanded, node_id, container_labels or {})
        # Its generic resources' env and devices, and bound device nodes as devices.
        self._plan = with_devices(self._plan, self._expanded, devices)
        self._adopted = adopted
        self._container_id: str | None = adopted.id if adopted else None
        # A container still running for a task the manager shut down while this agent was away
        # (its node was Down and the task replaced elsewhere) is stale: it is stopped and
        # removed, not kept as the history of a task this node still runs.
        self._stale = (
            adopted is not None and adopted.running and task.desired_state >= TaskState.SHUTDOWN
        )
        self._exit: _Exit | None = None
        self._removed = False
        self._retry = RETRY_INITIAL
        self._wake = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        # Started by this controller (or found running): its process is only waited on.
        self._started = False
        self._pid: int | None = None
        self._health = Health.NONE
        # The host-mode ports the running container got (Status.PortStatus), once started.
        self._port_status: PortStatus | None = None
        self._health_watcher: asyncio.Task[None] | None = None
        # Found unhealthy: it is being stopped, and its exit is reported as that (sticky: the
        # engine's later word on its health changes nothing).
        self._unhealthy = False
        self._deactivated = False

    @property
    def task_id(self) -> str:
        return self._task.id

    @property
    def task(self) -> Task:
        return self._task

    @property
    def status(self) -> TaskStatus:
        return self._status

    @property
    def container_name(self) -> str:
        return self._plan.name

    def update(self, task: Task) -> None:
        """A newer assignment of the same task: its desired state may have changed."""
        self._task = task
        # The manager may know a later state than this controller (after an agent restart).
        if task.status.state > self._status.state:
            self._status = task.status
        self._wake.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            if self._adopted is not None:
                self._adopt(self._adopted)
            while True:
                if self._status.state.is_terminal:
                    await self._stop_watching()
                if self._attached and self._status.state.is_terminal:
                    await self._detach()
                if self._files_written and self._status.state.is_terminal:
                    await self._release_files()
                step = next_step(
                    self._status.state,
                    self._task.desired_state,
                    exited=self._exit is not None,
                    removed=self._removed,
                    stale=self._stale,
                    started=self._started,
                    health=Health.UNHEALTHY if self._unhealthy else self._health,
                )
                if step in (Step.IDLE, Step.AWAIT_EXIT, Step.AWAIT_HEALTH):
                    if step is not Step.IDLE:
                        self._start_watching(group)
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                try:
                    await self._do(step)
                    self._retry = RETRY_INITIAL
                except EngineError as exc:
                    if not is_unreachable(exc):
                        raise
                    log.warning("task %s: %s; retrying", self.task_id, exc.message)
                    await self._clock.sleep(self._retry)
                    self._retry = min(self._retry * 2, RETRY_MAX)

    # -- the steps --------------------------------------------------------------------------

    async def _do(self, step: Step) -> None:
        match step:
            case Step.ACCEPT:
                if self._expansion_error is not None:
                    log.info("task %s rejected: %s", self.task_id, self._expansion_error)
                    self._advance(TaskState.REJECTED, RESOLVE_FAILED, err=self._expansion_error)
                    return
                self._advance(TaskState.ACCEPTED, "accepted")
            case Step.BEGIN_PREPARE:
                self._advance(TaskState.PREPARING, "preparing")
            case Step.PREPARE:
                try:
                    if self._expansion_error is not None:
                        raise TemplateError(self._expansion_error)
                    if self._container_id is None:
                        await executor.ensure_image(self._engine, self._plan.image)
                        plan = executor.with_mounts(self._plan, await self._write_files())
                        if self._networking is not None:
                            self._attached = True
                            joined = await self._networking.attach(self._task)
                            config = {
                                **plan.config,
                                "NetworkingConfig": joined.networking_config,
                            }
                            host_config = {**plan.host_config, **joined.host_config}
                            plan = replace(plan, config=config, host_config=host_config)
                        self._container_id = await executor.create(self._engine, plan)
                        if self._networking is not None:
                            await self._networking.connect(self._task, self._container_id)
                except SwarmletError as exc:
                    self._fatal(exc)
                    return
                self._advance(TaskState.READY, "prepared")
            case Step.BEGIN_START:
                self._advance(TaskState.STARTING, "starting")
            case Step.START:
                await self._start()
            case Step.BEGIN_RUNNING:
                self._advance(TaskState.RUNNING, "started", pid=self._pid)
            case Step.STOP_UNHEALTHY:
                await self._stop_unhealthy()
            case Step.FINISH:
                self._finish()
            case Step.SHUTDOWN:
                await self._shutdown()
            case Step.REMOVE:
                try:
                    await executor.remove(self._engine, self._container_ref)
                except SwarmletError as exc:
                    if is_unreachable(exc):
                        raise
                    # Nothing to report: the worker removes it again once the task is gone.
                    log.warning("removing %s: %s", self._plan.name, exc.message)
                self._removed = True
                await self._stop_watching()
            case _:  # pragma: no cover - IDLE and the waits are handled by run()
                raise AssertionError(step)

    async def _shutdown(self) -> None:
        info: ContainerInfo | None = None
        # Before READY there is no container, unless an earlier agent made one.
        if self._status.state >= TaskState.READY or self._container_id is not None:
            try:
                info = await executor.stop(
                    self._engine, self._container_ref, self._plan.stop_timeout
                )
            except SwarmletError as exc:
                self._fatal(exc)
                return
        await self._stop_watching()
        exit_code = info.exit_code if info is not None and info.exited else None
        self._advance(TaskState.SHUTDOWN, "shutdown", exit_code=exit_code)

    async def _start(self) -> None:
        try:
            info = await executor.start(self._engine, self._container_ref)
        except SwarmletError as exc:
            self._fatal(exc)
            return
        self._container_id = info.id
        self._started, self._pid = True, info.pid
        # With a healthcheck it stays STARTING: BEGIN_RUNNING once it is healthy.
        self._health = Health.of(info.health)
        self._port_status = port_status(host_mode_ports(self._task.endpoint_spec), info.ports)

    async def _stop_unhealthy(self) -> None:
        """Swarm's ``Shutdown`` of an unhealthy container: out of the load balancer first,
        then stopped with its stop signal and grace period; its exit is then reported."""
        self._unhealthy = True
        if self._status.state == TaskState.RUNNING and not self._deactivated:
            log.info("task %s: unhealthy container; stopping it", self.task_id)
            self._deactivated = True
            self._advance(TaskState.RUNNING, self._status.message, err=ERR_UNHEALTHY, pid=self._pid)
            if self._networking is not None:
                await self._clock.sleep(GOSSIP_CONVERGE_DELAY)
        try:
            info = await executor.stop(self._engine, self._container_ref, self._plan.stop_timeout)
        except SwarmletError as exc:
            self._fatal(exc)
            return
        if info is None:
            self._exit = _Exit(error=f"No such container: {self._plan.name}")
        elif info.exited:
            self._exit = _Exit(code=info.exit_code)
        else:  # not down yet (restarting?): its end is what is reported
            self._exit = _Exit(code=await self._engine.wait_container(self._container_ref))

    def _finish(self) -> None:
        ended = self._exit
        assert ended is not None
        cause = ERR_UNHEALTHY if self._unhealthy else None
        if ended.error is not None:
            self._advance(TaskState.FAILED, self._status.message, err=ended.error)
        elif ended.code == 0:
            # As Swarm: an unhealthy container that exits 0 once stopped has finished.
            self._advance(TaskState.COMPLETE, "finished", exit_code=0)
        else:
            self._advance(
                TaskState.FAILED,
                self._status.message,
                err=exit_error(ended.code, cause),
                exit_code=ended.code,
            )

    def _start_watching(self, group: asyncio.TaskGroup) -> None:
        """Wait for the process to exit and, if it has a healthcheck, follow its health."""
        if self._watcher is None:
            self._watcher = group.create_task(self._watch_exit(), name=f"wait-{self._plan.name}")
        if self._health != Health.NONE and self._health_watcher is None:
            follow = follow_health(self._engine, self._clock, self._container_ref, self._set_health)
            self._health_watcher = group.create_task(follow, name=f"health-{self._plan.name}")

    def _set_health(self, health: Health) -> None:
        if health != self._health:
            log.info("task %s: container %s", self.task_id, health or "without healthcheck")
            self._health = health
            self._wake.set()

    async def _watch_exit(self) -> None:
        retry = RETRY_INITIAL
        while True:
            try:
                code = await self._engine.wait_container(self._container_ref)
                self._exit = _Exit(code=code)
            except SwarmletError as exc:
                if is_unreachable(exc):
                    await self._clock.sleep(retry)
                    retry = min(retry * 2, RETRY_MAX)
                    continue
                self._exit = _Exit(error=exc.message)
            self._wake.set()
            return

    async def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            await cancel_and_wait(watcher)
        health, self._health_watcher = self._health_watcher, None
        if health is not None and not health.done():
            await cancel_and_wait(health)

    # -- status -----------------------------------------------------------------------------

    def _adopt(self, container: ContainerInfo) -> None:
        """Take over a container an earlier agent made for this task."""
        if self._status.state.is_terminal:
            return
        if container.running:
            self._started, self._pid = True, container.pid
            self._health = Health.of(container.health)
            ports = host_mode_ports(self._task.endpoint_spec)
            self._port_status = port_status(ports, container.ports)
            if self._status.state < TaskState.RUNNING and self._health in (
                Health.STARTING,
                Health.UNHEALTHY,
            ):
                # Not healthy yet: it stays STARTING (no traffic) until it is.
                if self._status.state < TaskState.STARTING:
                    self._advance(TaskState.STARTING, "starting")
                return
            self._advance(TaskState.RUNNING, "started", pid=container.pid)
        elif container.exited:
            self._exit = _Exit(code=container.exit_code)
            if self._status.state < TaskState.RUNNING:
                # It did run; the message of a failure is that of the last step, "started".
                self._status = self._status.replace(message="started")

    @property
    def _container_ref(self) -> str:
        # The name works before the ID is known (a container an earlier attempt created).
        return self._container_id or self._plan.name

    async def _write_files(self) -> list[dict[str, Any]]:
        """The task's secrets and configs written for its container; their bind mounts."""
        if not self._uses_files:
            return []
        if self._files is None:
            raise Unavailable("this agent cannot deliver secrets and configs")
        self._files_written = True
        # Expanded: a templated config's ``env`` reads the expanded Env, as in Swarm.
        return await self._files.prepare(self._expanded)

    async def _release_files(self) -> None:
        """The process is gone for good: its secrets go (as Docker unmounts them at stop)."""
        if self._files is not None:
            await self._files.release(self.task_id)
        self._files_written = False

    async def _detach(self) -> None:
        assert self._networking is not None
        try:
            await self._networking.detach(self._task)
        except SwarmletError as exc:
            if is_unreachable(exc):
                raise
            log.warning("task %s: releasing its network: %s", self.task_id, exc.message)
        self._attached = False

    def _fatal(self, exc: SwarmletError) -> None:
        if is_unreachable(exc):
            raise exc  # run() retries the step
        state = TaskState.REJECTED if self._status.state < TaskState.STARTING else TaskState.FAILED
        log.info("task %s %s: %s", self.task_id, state, exc.message)
        self._advance(state, self._status.message, err=exc.message)

    def _advance(
        self,
        state: TaskState,
        message: str,
        *,
        err: str | None = None,
        pid: int | None = None,
        exit_code: int | None = None,
    ) -> None:
        if state < self._status.state:
            log.error(
                "task %s: refusing to move back from %s to %s",
                self.task_id,
                self._status.state,
                state,
            )
            return
        # The zero values a validation would take for "not set": no PID is None, no exit
        # code 0, no error None.
        container = (
            _NO_CONTAINER_STATUS.replace(
                container_id=self._container_id, pid=pid or None, exit_code=exit_code or 0
            )
            if self._container_id is not None
            else None
        )
        self._status = _NO_STATUS.replace(
            timestamp=self._clock.now(),
            state=state,
            message=message,
            err=err or None,
            container_status=container,
            port_status=self._port_status or _NO_STATUS.port_status,
        )
        self._report(self._status)
