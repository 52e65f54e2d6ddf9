"""What a rolling update does when its tasks fail: FailureAction, Monitor, MaxFailureRatio,
rollback and the UpdateStatus the CLI reads, through the replicated reconciler on a small
simulated world (agents that take every task where it is told, and a bad image whose tasks
fail at start or after a while)."""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmlet.manager.orchestrator import Memory, reconcile_replicated
from swarmlet.models import Service, Task, TaskState, UpdateConfig
from swarmlet.models.service import FailureAction, UpdateState, UpdateStatus
from tests.manager.orchestrator.builders import (
    apply,
    at,
    changed,
    current,
    nodes,
    service,
    service_spec,
    task,
    update_config,
)

NODES = nodes("n1", "n2", "n3", "n4")
GOOD, BAD = "nginx:1", "nginx:bad"


@dataclass
class World:
    """A service, its tasks and the orchestrator's memory, moved on one second at a time."""

    svc: Service
    tasks: list[Task]
    # Seconds a task of the bad image runs before it fails (0: it fails at start).
    bad_runs_for: float = 0
    now: float = 1  # after the tasks of `updated_to` were created
    memory: Memory = field(default_factory=Memory)
    # When each task started running.
    started: dict[str, float] = field(default_factory=dict)

    def agents(self) -> None:
        moved = []
        for t in self.tasks:
            state = t.status.state
            if state.is_terminal:
                pass
            elif t.desired_state > TaskState.RUNNING:
                state = TaskState.SHUTDOWN
            elif t.desired_state == TaskState.RUNNING:
                bad = t.spec.container_spec.image == BAD
                if state != TaskState.RUNNING:
                    state = TaskState.FAILED if bad and not self.bad_runs_for else TaskState.RUNNING
                    self.started[t.id] = self.now
                elif bad and self.now - self.started[t.id] >= self.bad_runs_for:
                    state = TaskState.FAILED
            node_id = t.node_id or f"n{t.slot}"
            moved.append(t.replace(node_id=node_id, status=t.status.replace(state=state)))
        self.tasks = moved

    def step(self) -> None:
        plan = reconcile_replicated(self.svc, self.tasks, NODES, at(self.now), self.memory)
        self.tasks = apply(self.tasks, plan)  # new tasks last: the list is in order of creation
        self.svc = plan.updated_service or self.svc
        self.memory = plan.memory

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.step()
            self.agents()
            self.now += 1

    def images(self) -> list[str]:
        """The image of each slot's newest task (a slot may be empty, waiting for a restart)."""
        newest = {slot_of(t): t for t in self.tasks}  # the list is in order of creation
        return [newest[slot].spec.container_spec.image for slot in sorted(newest)]

    def made_by_update(self, image: str) -> list[Task]:
        """The tasks of an image that the update (not the restart supervisor) made: the first
        of each slot."""
        first: dict[int, Task] = {}
        for t in self.tasks:  # in order of creation
            if t.spec.container_spec.image == image:
                first.setdefault(slot_of(t), t)
        return list(first.values())

    @property
    def status(self) -> UpdateStatus:
        assert self.svc.update_status is not None
        return self.svc.update_status


def slot_of(t: Task) -> int:
    assert t.slot is not None
    return t.slot


def updated_to(image: str, replicas: int = 3, **spec: UpdateConfig | None) -> World:
    """A running service of GOOD, just updated (as the API writes it) to ``image``."""
    old = service(service_spec(replicas=replicas, image=GOOD, **spec))  # type: ignore[arg-type]
    tasks = [task(old, slot, node_id=f"n{slot}") for slot in range(1, replicas + 1)]
    new = changed(old, service_spec(replicas=replicas, image=image, **spec))  # type: ignore[arg-type]
    return World(new, tasks)


def first_failed(world: World) -> Task:
    failed = [t for t in world.tasks if t.status.state == TaskState.FAILED]
    return min(failed, key=lambda t: world.started[t.id])


def test_a_failed_task_pauses_the_update_with_swarms_message():
    world = updated_to(BAD, update=update_config(parallelism=1))
    world.run(30)
    assert world.status.state == UpdateState.PAUSED
    failed = first_failed(world)
    assert world.status.message == (
        f"update paused due to failure or early termination of task {failed.id}"
    )
    # Only the first slot was updated; the restart policy keeps retrying it with the new spec.
    assert world.images() == [BAD, GOOD, GOOD]


def test_a_paused_update_goes_on_after_the_next_service_update():
    world = updated_to(BAD, update=update_config(parallelism=1))
    world.run(10)
    assert world.status.state == UpdateState.PAUSED
    # `docker service update web` with the same spec: the API clears the status.
    world.svc = world.svc.replace(update_status=None, previous_spec=world.svc.spec)
    world.step()
    assert world.status.state == UpdateState.UPDATING
    assert world.images()[1] == BAD  # the next slot's turn


def test_rollback_puts_the_previous_spec_back_and_completes():
    config = update_config(parallelism=1, failure_action=FailureAction.ROLLBACK)
    world = updated_to(BAD, update=config)
    world.run(3)
    assert world.status.state == UpdateState.ROLLBACK_STARTED
    failed = first_failed(world)
    assert world.status.message == (
        f"update rolled back due to failure or early termination of task {failed.id}"
    )
    assert world.svc.spec.task_template.container_spec.image == GOOD
    assert world.svc.previous_spec is None
    world.run(30)
    assert world.images() == [GOOD, GOOD, GOOD]
    assert all(t.status.state == TaskState.RUNNING for t in current(world.tasks))
    assert world.status.state == UpdateState.ROLLBACK_COMPLETED
    assert world.status.message == "rollback completed"
    assert world.status.completed_at is not None


def rolling_back_to(image: str, rollback: UpdateConfig, replicas: int = 3) -> World:
    """A service of GOOD that `docker service rollback` takes back to ``image``."""
    world = updated_to(image, replicas=replicas, rollback=rollback)
    world.svc = world.svc.replace(
        previous_spec=service_spec(replicas=replicas, image=GOOD, rollback=rollback),
        update_status=UpdateStatus(
            state=UpdateState.ROLLBACK_STARTED, message="manually requested rollback"
        ),
    )
    return world


def test_a_failing_rollback_is_paused_never_rolled_back():
    rollback = update_config(parallelism=1, failure_action=FailureAction.ROLLBACK)
    world = rolling_back_to(BAD, rollback)
    world.run(10)
    assert world.status.state == UpdateState.ROLLBACK_PAUSED
    failed = first_failed(world)
    assert world.status.message == (
        f"rollback paused due to failure or early termination of task {failed.id}"
    )
    # With `pause` the state is the same, and the words are the update's.
    world = rolling_back_to(BAD, update_config(parallelism=1))
    world.run(10)
    assert world.status.state == UpdateState.ROLLBACK_PAUSED
    assert world.status.message.startswith("update paused due to failure")


def test_a_rollback_follows_the_rollback_config():
    world = rolling_back_to(GOOD.replace("1", "0"), update_config(parallelism=0), replicas=3)
    world.step()
    assert world.images() == ["nginx:0"] * 3  # all at once, not the update's one by one


def test_max_failure_ratio_lets_failures_up_to_the_ratio_pass():
    config = update_config(parallelism=1, max_failure_ratio=0.5)
    world = updated_to(BAD, replicas=4, update=config)
    world.run(60)
    # 1/4 and 2/4 are not above 0.5; the third failure is.
    assert world.status.state == UpdateState.PAUSED
    assert world.images() == [BAD, BAD, BAD, GOOD]
    assert len(world.made_by_update(BAD)) == 3


def test_a_task_that_fails_after_monitor_is_not_a_failure_of_the_update():
    world = updated_to(BAD, update=update_config(parallelism=0, monitor=2))
    world.bad_runs_for = 3
    world.run(30)
    assert world.status.state == UpdateState.COMPLETED

    world = updated_to(BAD, update=update_config(parallelism=0, monitor=5))
    world.bad_runs_for = 3
    world.run(30)
    assert world.status.state == UpdateState.PAUSED


def test_continue_watches_no_failure():
    config = update_config(parallelism=1, failure_action=FailureAction.CONTINUE)
    world = updated_to(BAD, update=config)
    world.run(60)
    assert world.images() == [BAD, BAD, BAD]
    assert world.status.state == UpdateState.COMPLETED


def test_the_update_completes_only_after_monitor_once_its_last_task_runs():
    world = updated_to(GOOD.replace("1", "2"), update=update_config(parallelism=0, monitor=4))
    world.run(3)
    assert world.status.state == UpdateState.UPDATING
    assert all(t.status.state == TaskState.RUNNING for t in current(world.tasks))
    world.run(4)
    assert world.status.state == UpdateState.COMPLETED


def test_a_rollback_replaces_a_slot_waiting_for_its_restart_at_once():
    config = update_config(parallelism=1, failure_action=FailureAction.ROLLBACK)
    world = updated_to(BAD, update=config)
    world.run(3)  # slot 1's new task failed; its restart would wait 5 s
    assert world.status.state == UpdateState.ROLLBACK_STARTED
    assert world.images()[0] == BAD
    world.run(1)
    assert world.images() == [GOOD, GOOD, GOOD]
    assert world.status.state == UpdateState.ROLLBACK_STARTED  # until Monitor has passed
