from __future__ import annotations

import json

import pytest

from swarmlet.manager.api.shapes import task_to_api
from swarmlet.manager.store import Op
from swarmlet.models import Service, TaskState, Version
from tests.manager.api.fakes import add_node, add_service, add_task


@pytest.fixture
async def cluster(store):
    """Two services over two nodes; web has an old task from before an update."""
    one, two = await add_node(store, "one"), await add_node(store, "two")
    web = await add_service(store, "web", replicas=2, tier="front")
    old = await add_task(
        store, web, one, slot=1, state=TaskState.SHUTDOWN, desired=TaskState.SHUTDOWN
    )
    # web was updated: its spec version moved on, and two new tasks run it.
    web = (await store.commit([Op.update(web.replace(spec_version=Version(index=2)))]))[0]
    new1 = await add_task(store, web, one, slot=1)
    new2 = await add_task(store, web, two, slot=2)
    db = await add_service(store, "db")
    db1 = await add_task(store, db, two, slot=1)
    return {
        "one": one,
        "two": two,
        "web": web,
        "db": db,
        "old": old,
        "new1": new1,
        "new2": new2,
        "db1": db1,
    }


async def listed(client, cluster, **query):
    response = await client.get("/v1.47/tasks", params={"filters": json.dumps(query)})
    assert response.status == 200, await response.text()
    by_id = {obj.id: name for name, obj in cluster.items()}
    return sorted(by_id[t["ID"]] for t in await response.json())


async def test_list_gives_tasks_in_the_apis_shape(client, cluster):
    response = await client.get("/tasks")
    tasks = {t["ID"]: t for t in await response.json()}
    assert len(tasks) == 4
    task = tasks[cluster["new2"].id]
    assert task["ServiceID"] == cluster["web"].id
    assert task["NodeID"] == cluster["two"].id
    assert task["Slot"] == 2
    assert task["Status"]["State"] == "running"
    assert task["DesiredState"] == "running"
    assert task["Spec"]["ContainerSpec"]["Image"] == "swarmlet-test/busybox:latest"
    assert task == task_to_api(cluster["new2"])


async def test_filter_by_service_id_or_name(client, cluster):
    web = cluster["web"]
    assert await listed(client, cluster, service=[web.id]) == ["new1", "new2", "old"]
    assert await listed(client, cluster, service={"web": True}) == ["new1", "new2", "old"]
    assert await listed(client, cluster, service=["web", web.id]) == ["new1", "new2", "old"]
    assert await listed(client, cluster, service=["db"]) == ["db1"]


async def test_filter_by_node_id_or_hostname(client, cluster):
    assert await listed(client, cluster, node=["one"]) == ["new1", "old"]
    assert await listed(client, cluster, node=[cluster["two"].id]) == ["db1", "new2"]


async def test_filter_by_desired_state(client, cluster):
    assert await listed(client, cluster, **{"desired-state": ["shutdown"]}) == ["old"]
    running = await listed(client, cluster, **{"desired-state": ["running", "accepted"]})
    assert running == ["db1", "new1", "new2"]


async def test_filter_up_to_date(client, cluster):
    query = {"service": [cluster["web"].id], "_up-to-date": ["true"]}
    assert await listed(client, cluster, **query) == ["new1", "new2"]


async def test_filter_by_name_id_label_and_runtime(client, cluster):
    assert await listed(client, cluster, name=["web.1"]) == ["new1", "old"]
    assert await listed(client, cluster, name=["db."]) == ["db1"]
    assert await listed(client, cluster, id=[cluster["db1"].id[:10]]) == ["db1"]
    assert await listed(client, cluster, label=["tier=front"]) == ["new1", "new2", "old"]
    assert await listed(client, cluster, runtime=["container"]) == ["db1", "new1", "new2", "old"]
    assert await listed(client, cluster, runtime=["plugin"]) == []


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"service": ["nope"]}, 404, "service nope not found"),
        ({"node": ["nope"]}, 404, "node nope not found"),
        ({"desired-state": ["dancing"]}, 400, "Invalid desired-state filter: 'dancing'"),
        ({"colour": ["red"]}, 400, "invalid filter 'colour'"),
    ],
)
async def test_bad_filters_are_refused(client, cluster, query, status, message):
    response = await client.get("/tasks", params={"filters": json.dumps(query)})
    assert response.status == status
    assert await response.json() == {"message": message}


async def test_inspect_by_id_and_prefix(client, cluster):
    task = cluster["db1"]
    for ref in (task.id, task.id[:7], f"db.1.{task.id}"):
        response = await client.get(f"/tasks/{ref}")
        assert response.status == 200
        assert await response.json() == task_to_api(task)


async def test_inspect_an_unknown_task_is_404(client, cluster):
    response = await client.get("/tasks/xyz")
    assert response.status == 404
    assert await response.json() == {"message": "task xyz not found"}


async def test_tasks_of_a_deleted_service_are_not_up_to_date(client, store, cluster):
    await store.commit([Op.delete(store.get(Service, cluster["db"].id))])
    assert await listed(client, cluster, **{"_up-to-date": ["1"]}) == ["new1", "new2"]
