"""The replicated and global orchestrators: thin control loops over the pure reconcilers.

Each owns the services of its mode. Events mark services dirty (a task's service; for a node,
the services that may care); a pass reconciles each dirty service, and each service whose timer
(a restart delay, an update delay) is due, and writes all their plans in one transaction
(``await store.update``).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterable, Mapping

from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec, SwarmletError
from swarmlet.manager.controller import Controller
from swarmlet.manager.orchestrator.global_ import reconcile_global
from swarmlet.manager.orchestrator.jobs import reconcile_global_job, reconcile_replicated_job
from swarmlet.manager.orchestrator.plan import Memory, Now, Plan
from swarmlet.manager.orchestrator.replicated import reconcile_replicated
from swarmlet.manager.store import Action, Event, Store
from swarmlet.models import Node, Service, Task, TaskState

log = logging.getLogger(__name__)

# Seconds before a service whose plan could not be written is tried again.
RETRY_DELAY = 1.0

# The states between the allocator's and scheduler's work and RUNNING: a task on its way.
_ON_THE_WAY = frozenset(
    {
        TaskState.PENDING,
        TaskState.ASSIGNED,
        TaskState.ACCEPTED,
        TaskState.PREPARING,
        TaskState.READY,
        TaskState.STARTING,
    }
)


class ServiceOrchestrator(Controller):
    """Reconciles the services of one mode; subclasses say which mode and how."""

    is_global: bool

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._dirty: set[str] = set()
        self._memory: dict[str, Memory] = {}
        # Service ID -> monotonic time its next time-based decision is due.
        self._wake: dict[str, float] = {}

    @abstractmethod
    def reconcile(
        self,
        service: Service,
        tasks: Iterable[Task],
        nodes: Mapping[str, Node],
        now: Now,
        memory: Memory,
    ) -> Plan: ...

    def _owns(self, service: Service) -> bool:
        return not service.spec.mode.is_job and service.is_global == self.is_global

    # Marking.

    def start(self) -> None:
        self._dirty = {s.id for s in self._store.all(Service) if self._owns(s)}

    def mark(self, event: Event) -> None:
        # Not its own writes (the runtime passes over them): a pass leaves its services as it
        # wants them, and new tasks or tasks told to stop decide nothing until something else
        # happens to them.
        obj = event.obj
        if isinstance(obj, Service):
            if event.action is Action.DELETE:
                self._forget(obj.id)
            elif self._owns(obj):
                self._dirty.add(obj.id)
        elif isinstance(obj, Task):
            if obj.is_attachment:
                return  # no service's: nothing to reconcile
            if event.action is Action.DELETE or self._may_decide(obj):
                self._dirty.add(obj.service_id)
        elif isinstance(obj, Node):
            self._dirty.update(self._services_near(obj))

    def _may_decide(self, task: Task) -> bool:
        """Whether the task as it is now may change a decision about its service.

        Most task events are an agent's reports of a task on its way to RUNNING, and none of
        those steps decides anything here: restarts, failover and a stop-first replacement wait
        for a task's end (or its node's change), and only a rolling update in flight waits for
        RUNNING. Passing over them spares a pass over the whole service per report, which
        with thousands of tasks was most of the manager's work (benchmarks/scale.py).
        """
        if task.desired_state != TaskState.RUNNING:
            return True
        state = task.status.state
        if state in _ON_THE_WAY:
            return False
        if state == TaskState.RUNNING:
            memory = self._memory.get(task.service_id)
            return memory is None or bool(memory.rollout.updating)
        return True

    def _services_near(self, node: Node) -> Iterable[str]:
        """The services a change of this node may concern."""
        tasks = self._store.tasks_of_node(node.id)
        return {task.service_id for task in tasks if not task.is_attachment}

    def _forget(self, service_id: str) -> None:
        self._dirty.discard(service_id)
        self._memory.pop(service_id, None)
        self._wake.pop(service_id, None)

    def timeout(self) -> float | None:
        if not self._wake:
            return None
        return max(0.0, min(self._wake.values()) - self._clock.monotonic())

    # Acting.

    async def act(self) -> None:
        now = Now(self._clock.now(), self._clock.monotonic())
        due = {sid for sid, at in self._wake.items() if at <= now.mono}
        for service_id in due:
            del self._wake[service_id]  # the pass sets it again if something still waits
        dirty, self._dirty = self._dirty | due, set()
        if not dirty:
            return
        nodes = {node.id: node for node in self._store.all(Node)}
        plans: dict[str, Plan] = {}
        for service_id in sorted(dirty):
            service = self._store.find(Service, service_id)
            if service is None or not self._owns(service):
                self._forget(service_id)
                continue
            tasks = self._store.tasks_of_service(service_id)
            memory = self._memory.get(service_id, Memory())
            try:
                plans[service_id] = self.reconcile(service, tasks, nodes, now, memory)
            except InvalidSpec as exc:
                log.warning("orchestrator: service %s cannot be reconciled: %s", service_id, exc)
        await self._write(plans, now)

    async def _commit(self, plans: Iterable[Plan]) -> None:
        """Write the plans, new tasks with the swarm's default log driver as it is now; in
        parts of ``max_ops_per_transaction`` ops, as SwarmKit's orchestrator writes through a
        batch: the allocator and the scheduler start on the first tasks of a service scaled
        by thousands while the rest are written (each op carries the version it was read at,
        and a pass cut short is decided again)."""
        cluster = self._store.cluster()
        log_driver = cluster.spec.task_defaults.log_driver if cluster is not None else None
        await self.write_ops([op for plan in plans for op in plan.ops(log_driver)])

    async def _write(self, plans: dict[str, Plan], now: Now) -> None:
        """One commit for every plan; if it fails, each service on its own, so one stale plan
        does not hold back the others. A failed service is decided again on a later pass."""
        written = plans
        try:
            await self._commit(plans.values())
        except SwarmletError:
            written = {}
            for service_id, plan in plans.items():
                try:
                    await self._commit([plan])
                except SwarmletError as exc:
                    log.info("orchestrator: service %s: %s; trying again", service_id, exc)
                    self._dirty.add(service_id)
                    self._wake[service_id] = now.mono + RETRY_DELAY
                else:
                    written[service_id] = plan
        for service_id, plan in written.items():
            self._memory[service_id] = plan.memory
            if plan.wake_at is None:
                self._wake.pop(service_id, None)
            else:
                self._wake[service_id] = plan.wake_at


class ReplicatedOrchestrator(ServiceOrchestrator):
    """Slots 1..Replicas of every replicated service; restarts; rolling updates."""

    is_global = False
    reconcile = staticmethod(reconcile_replicated)


class GlobalOrchestrator(ServiceOrchestrator):
    """One task per eligible node for every global service; restarts; rolling updates."""

    is_global = True
    reconcile = staticmethod(reconcile_global)

    def _services_near(self, node: Node) -> Iterable[str]:
        # Any node may join, leave or start to match a global service's constraints.
        return {s.id for s in self._store.all(Service) if s.is_global}


class JobOrchestrator(ServiceOrchestrator):
    """Replicated and global jobs: tasks that run to completion, once per iteration of the
    job; failed ones restarted (SwarmKit's one jobs orchestrator for both modes)."""

    def _owns(self, service: Service) -> bool:
        return service.spec.mode.is_job

    def reconcile(
        self,
        service: Service,
        tasks: Iterable[Task],
        nodes: Mapping[str, Node],
        now: Now,
        memory: Memory,
    ) -> Plan:
        if service.is_global:
            return reconcile_global_job(service, tasks, nodes, now, memory)
        return reconcile_replicated_job(service, tasks, nodes, now, memory)

    def _may_decide(self, task: Task) -> bool:
        # A job's task on its way or running decides nothing; its end does (a slot to fill,
        # a failure to restart), as in SwarmKit's jobs orchestrator.
        if task.desired_state == TaskState.COMPLETE:
            return task.state.is_terminal
        return True

    def _services_near(self, node: Node) -> Iterable[str]:
        # Any node may join, leave or start to match a global job's constraints.
        near = set(super()._services_near(node))
        return near | {s.id for s in self._store.all(Service) if s.spec.mode.global_job}
