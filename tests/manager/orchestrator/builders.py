"""Plain objects for the orchestrators' tests, and a small fake cluster around the real store:
a fake allocator and scheduler (NEW or PENDING → ASSIGNED) and fake agents (tasks move to what
they are told)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from swarmlet.clock import FakeClock
from swarmlet.ids import new_id
from swarmlet.manager.orchestrator import Now, Plan
from swarmlet.manager.store import Op, Store, Tx
from swarmlet.models import (
    SECOND_NS,
    ContainerSpec,
    Node,
    NodeAvailability,
    NodeSpec,
    NodeState,
    NodeStatus,
    Placement,
    ReplicatedMode,
    RestartCondition,
    RestartPolicy,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    UpdateConfig,
    UpdateOrder,
    Version,
)
from swarmlet.models.service import FailureAction, GlobalMode

START = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float = 0.0) -> Now:
    return Now(START + timedelta(seconds=seconds), seconds)


def node(
    node_id: str,
    *,
    state: NodeState = NodeState.READY,
    availability: NodeAvailability = NodeAvailability.ACTIVE,
    labels: dict[str, str] | None = None,
) -> Node:
    return Node(
        id=node_id,
        spec=NodeSpec(availability=availability, labels=labels or {}),
        status=NodeStatus(state=state, addr="10.0.0.1"),
    )


def nodes(*ids: str) -> dict[str, Node]:
    return {node_id: node(node_id) for node_id in ids}


def restart_policy(
    condition: RestartCondition = RestartCondition.ANY,
    delay: float = 5,
    max_attempts: int = 0,
    window: float = 0,
) -> RestartPolicy:
    return RestartPolicy(
        condition=condition,
        delay=int(delay * SECOND_NS),
        max_attempts=max_attempts,
        window=int(window * SECOND_NS),
    )


def update_config(
    parallelism: int = 1,
    delay: float = 0,
    order: UpdateOrder = UpdateOrder.STOP_FIRST,
    *,
    failure_action: FailureAction = FailureAction.PAUSE,
    monitor: float = 5,
    max_failure_ratio: float = 0,
) -> UpdateConfig:
    return UpdateConfig(
        parallelism=parallelism,
        delay=int(delay * SECOND_NS),
        order=order,
        failure_action=failure_action,
        monitor=int(monitor * SECOND_NS),
        max_failure_ratio=max_failure_ratio,
    )


def service_spec(
    name: str = "web",
    *,
    replicas: int = 3,
    is_global: bool = False,
    image: str = "nginx:1",
    restart: RestartPolicy | None = None,
    update: UpdateConfig | None = None,
    rollback: UpdateConfig | None = None,
    constraints: Sequence[str] = (),
) -> ServiceSpec:
    mode = (
        ServiceMode(global_=GlobalMode())
        if is_global
        else ServiceMode(replicated=ReplicatedMode(replicas=replicas))
    )
    template = TaskSpec(
        container_spec=ContainerSpec(image=image),
        restart_policy=restart,
        placement=Placement(constraints=list(constraints)) if constraints else None,
    )
    return ServiceSpec(
        name=name,
        task_template=template,
        mode=mode,
        update_config=update,
        rollback_config=rollback,
    )


def service(
    spec: ServiceSpec | None = None, *, service_id: str = "svc1", version: int = 1
) -> Service:
    return Service(id=service_id, spec=spec or service_spec(), spec_version=Version(index=version))


def changed(old: Service, spec: ServiceSpec) -> Service:
    """The service after an update to ``spec``, as the API writes it."""
    return old.replace(
        spec=spec,
        previous_spec=old.spec,
        spec_version=Version(index=old.spec_version.index + 1),
    )


def task(
    svc: Service,
    slot: int | None = None,
    *,
    node_id: str | None = None,
    state: TaskState = TaskState.RUNNING,
    desired: TaskState = TaskState.RUNNING,
    spec: TaskSpec | None = None,
    created: float = 0.0,
) -> Task:
    return Task(
        id=new_id(),
        service_id=svc.id,
        service_name=svc.spec.name,
        slot=slot,
        node_id=node_id,
        spec=spec or svc.spec.task_template,
        spec_version=svc.spec_version,
        status=TaskStatus(state=state, timestamp=START),
        desired_state=desired,
        created_at=START + timedelta(seconds=created),
    )


def apply(tasks: Iterable[Task], plan: Plan) -> list[Task]:
    """The tasks after the plan is written."""
    result = {t.id: t for t in tasks}
    # The store stamps a new task's creation with the time of the commit.
    created = [
        t if t.created_at else t.replace(created_at=t.status.timestamp) for t in plan.created
    ]
    for t in [*created, *plan.updated]:
        result[t.id] = t
    return list(result.values())


def current(tasks: Iterable[Task]) -> list[Task]:
    return [t for t in tasks if t.desired_state <= TaskState.RUNNING]


def by_slot(tasks: Iterable[Task]) -> dict[int, list[Task]]:
    slots: dict[int, list[Task]] = {}
    for t in tasks:
        assert t.slot is not None
        slots.setdefault(t.slot, []).append(t)
    return slots


class FakeCluster:
    """The store with fake scheduling and fake agents; the orchestrators run for real."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        self.store = store
        self.clock = clock
        # Images the agents cannot pull: their tasks are REJECTED while being prepared.
        self.missing_images: set[str] = set()

    async def settle(self) -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.settle()

    # Nodes

    async def add_node(self, node_id: str, **kwargs: object) -> Node:
        [written] = await self.store.commit([Op.create(node(node_id, **kwargs))])  # type: ignore[arg-type]
        assert isinstance(written, Node)
        return written

    async def set_node(
        self,
        node_id: str,
        *,
        state: NodeState | None = None,
        availability: NodeAvailability | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        def write(tx: Tx) -> None:
            n = tx.get(Node, node_id)
            if state is not None:
                n = n.replace(status=n.status.replace(state=state))
            if availability is not None:
                n = n.replace(spec=n.spec.replace(availability=availability))
            if labels is not None:
                n = n.replace(spec=n.spec.replace(labels=labels))
            tx.update(n)

        await self.store.update(write)

    async def remove_node(self, node_id: str) -> None:
        await self.store.update(lambda tx: tx.delete(tx.get(Node, node_id)))

    # Services, as the API changes them

    async def create_service(self, spec: ServiceSpec) -> Service:
        svc = Service(id=new_id(), spec=spec, spec_version=Version(index=1))
        [written] = await self.store.commit([Op.create(svc)])
        assert isinstance(written, Service)
        return written

    async def update_service(self, service_id: str, spec: ServiceSpec) -> Service:
        def write(tx: Tx) -> None:
            old = tx.get(Service, service_id)
            tx.update(changed(old, spec).replace(update_status=None))

        [written] = (await self.store.update(write)).objects
        assert isinstance(written, Service)
        return written

    async def delete_service(self, service_id: str) -> None:
        def write(tx: Tx) -> None:
            tx.delete(tx.get(Service, service_id))
            for t in tx.tasks_of_service(service_id):
                tx.update(t.replace(desired_state=TaskState.REMOVE))

        await self.store.update(write)

    def service(self, service_id: str) -> Service:
        return self.store.get(Service, service_id)

    def tasks(self, service_id: str) -> list[Task]:
        return sorted(
            self.store.tasks_of_service(service_id), key=lambda t: (t.slot or 0, t.node_id or "")
        )

    def current(self, service_id: str) -> list[Task]:
        return current(self.tasks(service_id))

    # The fake scheduler and agents

    async def schedule(self) -> None:
        """Allocate and place NEW and PENDING tasks on the usable node with the fewest tasks;
        confirm preset ones."""
        await self.store.update(self._schedule)

    def _schedule(self, tx: Tx) -> None:
        usable = [
            n.id
            for n in tx.all(Node)
            if n.status.state == NodeState.READY and n.spec.availability == NodeAvailability.ACTIVE
        ]
        ops = []
        load = {n: len(current(tx.tasks_of_node(n))) for n in usable}
        for t in sorted(tx.all(Task), key=lambda t: t.id):
            if t.state > TaskState.PENDING or t.desired_state > TaskState.RUNNING:
                continue
            target = t.node_id or (min(usable, key=lambda n: (load[n], n)) if usable else None)
            if target is None:
                continue
            load[target] = load.get(target, 0) + 1
            status = TaskStatus(state=TaskState.ASSIGNED, timestamp=self.clock.now())
            ops.append(Op.update(t.replace(node_id=target, status=status)))
        tx.write(ops)

    async def agents(self) -> None:
        """Every agent on a node that is not Down moves its tasks to their desired state (a
        task whose image is missing is REJECTED instead of being prepared)."""
        await self.store.update(self._agents)

    def _agents(self, tx: Tx) -> None:
        ops = []
        for t in tx.all(Task):
            if t.node_id is None or t.state < TaskState.ASSIGNED or t.state.is_terminal:
                continue
            n = tx.find(Node, t.node_id)
            if n is None or n.status.state == NodeState.DOWN:
                continue
            target = t.desired_state
            if target > TaskState.RUNNING:
                target = TaskState.SHUTDOWN
            elif t.state < TaskState.READY and t.spec.container_spec.image in self.missing_images:
                target = TaskState.REJECTED
            if target != t.state:
                ops.append(Op.update(self._moved(t, target)))
        tx.write(ops)

    def _moved(self, t: Task, state: TaskState) -> Task:
        return t.replace(status=TaskStatus(state=state, timestamp=self.clock.now()))

    async def end(self, task_id: str, state: TaskState = TaskState.FAILED) -> None:
        await self.store.update(lambda tx: tx.update(self._moved(tx.get(Task, task_id), state)))

    async def converge(self, rounds: int = 20) -> None:
        """Let scheduling, agents and orchestrators run until nothing changes (time stands)."""
        for _ in range(rounds):
            await self.settle()
            revision = self.store.revision
            await self.schedule()
            await self.agents()
            await self.settle()
            if self.store.revision == revision:
                return
        raise AssertionError("the cluster did not converge")
