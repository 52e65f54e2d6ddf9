"""The job controller against the real store, with every orchestrator controller running: fake
scheduling and agents that run a job's tasks to their end."""

from __future__ import annotations

from swarmlet.ids import new_id
from swarmlet.manager.store import Op
from swarmlet.models import (
    ContainerSpec,
    RestartCondition,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    Version,
)
from swarmlet.models.service import GlobalJob, JobStatus, ReplicatedJob
from tests.manager.orchestrator.builders import FakeCluster, restart_policy


async def create_job(cluster: FakeCluster, mode: ServiceMode, **template: object) -> Service:
    spec = ServiceSpec(
        name="job",
        task_template=TaskSpec(container_spec=ContainerSpec(image="busybox"), **template),
        mode=mode,
    )
    svc = Service(
        id=new_id(),
        spec=spec,
        spec_version=Version(index=1),
        job_status=JobStatus(last_execution=cluster.clock.now()),
    )
    await cluster.store.commit([Op.create(svc)])
    return svc


async def rerun(cluster: FakeCluster, service_id: str) -> None:
    """An update of the job, as the API writes it: the next iteration."""
    svc = cluster.service(service_id)
    assert svc.job_status is not None
    index = svc.job_status.job_iteration.index + 1
    status = svc.job_status.replace(job_iteration=Version(index=index))
    await cluster.store.commit([Op.update(svc.replace(job_status=status))])


async def move(cluster: FakeCluster, task: Task, state: TaskState) -> None:
    status = TaskStatus(state=state, timestamp=cluster.clock.now())
    await cluster.store.commit([Op.update(task.replace(status=status))])


async def step(cluster: FakeCluster) -> None:
    """Run what waits (on the first node, unless placed), stop what is told to."""
    await cluster.settle()
    for task in cluster.store.all(Task):
        if task.desired_state >= TaskState.SHUTDOWN:
            if not task.state.is_terminal:
                await move(cluster, task, TaskState.SHUTDOWN)
        elif task.state < TaskState.RUNNING:
            status = TaskStatus(state=TaskState.RUNNING, timestamp=cluster.clock.now())
            node_id = task.node_id or "n1"
            await cluster.store.commit([Op.update(task.replace(node_id=node_id, status=status))])
    await cluster.settle()


def running(cluster: FakeCluster, service_id: str) -> list[Task]:
    tasks = cluster.store.tasks_of_service(service_id)
    return sorted(
        (t for t in tasks if t.state == TaskState.RUNNING), key=lambda t: (t.slot or 0, t.id)
    )


def completed(cluster: FakeCluster, service_id: str) -> list[Task]:
    return [t for t in cluster.store.tasks_of_service(service_id) if t.state == TaskState.COMPLETE]


async def test_a_replicated_job_runs_its_completions_three_at_a_time(cluster):
    await cluster.add_node("n1")
    mode = ServiceMode(replicated_job=ReplicatedJob(max_concurrent=3, total_completions=10))
    svc = await create_job(cluster, mode)
    for _ in range(40):
        await step(cluster)
        now_running = running(cluster, svc.id)
        assert len(now_running) <= 3
        if not now_running:
            break
        await move(cluster, now_running[0], TaskState.COMPLETE)
    done = completed(cluster, svc.id)
    assert sorted(t.slot or 0 for t in done) == list(range(10))
    assert len(cluster.store.tasks_of_service(svc.id)) == 10  # nothing reaped, nothing more

    await rerun(cluster, svc.id)
    for _ in range(40):
        await step(cluster)
        now_running = running(cluster, svc.id)
        assert len(now_running) <= 3
        if not now_running:
            break
        await move(cluster, now_running[0], TaskState.COMPLETE)
    assert len(completed(cluster, svc.id)) == 20


async def test_a_failed_job_task_is_retried_after_the_delay(cluster):
    await cluster.add_node("n1")
    mode = ServiceMode(replicated_job=ReplicatedJob(max_concurrent=1, total_completions=1))
    policy = restart_policy(RestartCondition.ANY, delay=2)
    svc = await create_job(cluster, mode, restart_policy=policy)
    await step(cluster)
    [first] = running(cluster, svc.id)
    await move(cluster, first, TaskState.FAILED)
    await step(cluster)
    assert running(cluster, svc.id) == []  # waiting for the restart delay
    await cluster.advance(2)
    await step(cluster)
    [second] = running(cluster, svc.id)
    assert second.slot == 0
    assert second.desired_state == TaskState.COMPLETE
    await move(cluster, second, TaskState.COMPLETE)
    await step(cluster)
    await cluster.advance(10)
    assert running(cluster, svc.id) == []  # a completed task is never restarted
    assert len(cluster.store.tasks_of_service(svc.id)) == 2


async def test_a_global_job_completes_once_on_every_node(cluster):
    for node_id in ("n1", "n2", "n3"):
        await cluster.add_node(node_id)
    await cluster.advance(1)  # the nodes were there before the job
    svc = await create_job(cluster, ServiceMode(global_job=GlobalJob()))
    await step(cluster)
    tasks = running(cluster, svc.id)
    assert sorted(t.node_id or "" for t in tasks) == ["n1", "n2", "n3"]
    for task in tasks:
        await move(cluster, task, TaskState.COMPLETE)
    await step(cluster)
    await step(cluster)
    assert running(cluster, svc.id) == []
    assert len(completed(cluster, svc.id)) == 3
