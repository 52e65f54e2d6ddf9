"""The service endpoints for jobs: JobStatus on create and on every update, ServiceStatus
and the mode filter, and what a job refuses."""

from __future__ import annotations

import json

from swarmlet.ids import new_id
from swarmlet.manager.store import Op
from swarmlet.models import Service, Task, TaskState, TaskStatus, Version
from tests.manager.api.fakes import add_node, service_spec

REPLICATED_JOB = {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 10}}


async def create(client, spec):
    response = await client.post("/v1.47/services/create", json=spec)
    assert response.status == 201, await response.text()
    return (await response.json())["ID"]


async def update(client, store, service_id, spec, query=""):
    version = store.get(Service, service_id).version.index
    return await client.post(
        f"/v1.47/services/{service_id}/update?version={version}{query}", json=spec
    )


async def add_job_task(
    store, service, node, state, desired=TaskState.COMPLETE, iteration=0, slot=0
):
    task = Task(
        id=new_id(),
        service_id=service.id,
        service_name=service.spec.name,
        slot=slot,
        node_id=node.id,
        spec=service.spec.task_template,
        spec_version=service.spec_version,
        status=TaskStatus(state=state),
        desired_state=desired,
        job_iteration=Version(index=iteration),
    )
    await store.commit([Op.create(task)])


async def test_create_fills_in_moby_defaults_and_starts_iteration_zero(client, store, clock):
    service_id = await create(client, service_spec("job", Mode={"ReplicatedJob": {}}))
    response = await client.get(f"/v1.47/services/{service_id}")
    data = await response.json()
    assert data["Spec"]["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert data["JobStatus"]["JobIteration"] == {"Index": 0}
    assert store.get(Service, service_id).job_status.last_execution == clock.now()
    three = await create(
        client, service_spec("three", Mode={"ReplicatedJob": {"MaxConcurrent": 3}})
    )
    mode = store.get(Service, three).spec.mode.replicated_job
    assert (mode.max_concurrent, mode.total_completions) == (3, 3)


async def test_a_service_has_no_job_status(client, store):
    service_id = await create(client, service_spec("web"))
    assert "JobStatus" not in await (await client.get(f"/v1.47/services/{service_id}")).json()


async def test_every_update_runs_the_job_again(client, store, clock):
    service_id = await create(client, service_spec("job", Mode={"GlobalJob": {}}))
    spec = service_spec("job", Mode={"GlobalJob": {}})
    for iteration in (1, 2):
        await clock.advance(1)
        response = await update(client, store, service_id, spec)  # nothing changed: still runs
        assert response.status == 200, await response.text()
        status = store.get(Service, service_id).job_status
        assert status.job_iteration == Version(index=iteration)
        assert status.last_execution == clock.now()
    current = store.get(Service, service_id)
    response = await update(client, store, service_id, current.spec.to_api(), "&rollback=previous")
    assert response.status == 200
    assert store.get(Service, service_id).job_status.job_iteration == Version(index=3)


async def test_a_job_refuses_an_update_config_and_a_mode_change(client, store):
    service_id = await create(client, service_spec("job", Mode=REPLICATED_JOB))
    revision = store.revision
    for spec, message in [
        (
            service_spec("job", Mode=REPLICATED_JOB, UpdateConfig={"Parallelism": 1}),
            "Jobs may not have an update config",
        ),
        (service_spec("job", Mode={"Replicated": {"Replicas": 1}}), "mode change is not allowed"),
        (service_spec("job", Mode={"GlobalJob": {}}), "mode change is not allowed"),
    ]:
        response = await update(client, store, service_id, spec)
        assert response.status == 400
        assert message in (await response.json())["message"]
    assert store.revision == revision


async def test_list_status_counts_the_current_iteration(client, store):
    node = await add_node(store, "n1")
    job_id = await create(client, service_spec("job", Mode=REPLICATED_JOB))
    job = store.get(Service, job_id)
    await store.commit(
        [Op.update(job.replace(job_status=job.job_status.replace(job_iteration=Version(index=1))))]
    )
    job = store.get(Service, job_id)
    for state in (TaskState.COMPLETE, TaskState.COMPLETE, TaskState.RUNNING, TaskState.PENDING):
        await add_job_task(store, job, node, state, iteration=1)
    await add_job_task(store, job, node, TaskState.COMPLETE, iteration=0)  # an older run
    global_id = await create(client, service_spec("everywhere", Mode={"GlobalJob": {}}))
    everywhere = store.get(Service, global_id)
    await add_job_task(store, everywhere, node, TaskState.COMPLETE)
    await add_job_task(store, everywhere, node, TaskState.RUNNING)
    await add_job_task(store, everywhere, node, TaskState.FAILED, desired=TaskState.SHUTDOWN)

    response = await client.get("/v1.47/services?status=true")
    statuses = {s["Spec"]["Name"]: s["ServiceStatus"] for s in await response.json()}
    assert statuses["job"] == {"RunningTasks": 1, "DesiredTasks": 2, "CompletedTasks": 2}
    assert statuses["everywhere"] == {"RunningTasks": 1, "DesiredTasks": 1, "CompletedTasks": 1}


async def test_the_mode_filter_knows_jobs(client, store):
    await create(client, service_spec("web"))
    await create(client, service_spec("agent", Mode={"Global": {}}))
    await create(client, service_spec("job", Mode=REPLICATED_JOB))
    await create(client, service_spec("everywhere", Mode={"GlobalJob": {}}))

    async def listed(mode):
        query = {"filters": json.dumps({"mode": [mode]})}
        response = await client.get("/v1.47/services", params=query)
        return sorted(s["Spec"]["Name"] for s in await response.json())

    assert await listed("replicated") == ["web"]
    assert await listed("global") == ["agent"]
    assert await listed("replicated-job") == ["job"]
    assert await listed("global-job") == ["everywhere"]
