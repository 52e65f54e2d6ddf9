from __future__ import annotations

import json

import pytest

from swarmlet.manager.store import Action
from swarmlet.models import NodeState, Service, Task, TaskState, Version
from tests.manager.api.fakes import add_node, add_service, add_task, service_spec


async def create(client, spec):
    return await client.post("/v1.47/services/create", json=spec)


async def test_create_stores_the_service(client, store):
    spec = service_spec(
        "web",
        EndpointSpec={"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 80}]},
    )
    response = await create(client, spec)
    assert response.status == 201
    body = await response.json()
    assert body["Warnings"] == []
    service = store.get(Service, body["ID"])
    assert len(service.id) == 25
    assert service.spec.name == "web"
    assert service.spec.task_template.container_spec.image == "swarmlet-test/busybox:latest"
    assert service.spec_version == Version(index=1)
    assert service.endpoint is not None
    assert service.endpoint.spec.mode == "vip"
    assert [p.target_port for p in service.endpoint.ports or []] == [80]


async def test_create_without_a_name_gets_a_valid_random_one(client, store):
    response = await create(client, service_spec(""))
    assert response.status == 201
    name = store.get(Service, (await response.json())["ID"]).spec.name
    assert name
    assert (await create(client, service_spec(name))).status == 409


async def test_create_without_a_mode_is_one_replica(client, store):
    spec = service_spec("web")
    del spec["Mode"]
    response = await create(client, spec)
    service = store.get(Service, (await response.json())["ID"])
    assert service.replicas == 1
    assert not service.is_global


async def test_create_a_duplicate_name_is_a_conflict(client, store):
    assert (await create(client, service_spec("web"))).status == 201
    revision = store.revision
    response = await create(client, service_spec("web", Labels={"other": "1"}))
    assert response.status == 409
    assert "name conflicts with an existing object" in (await response.json())["message"]
    assert store.revision == revision


REFUSED = [
    (service_spec("web", image=""), "ContainerSpec: image reference must be provided"),
    (service_spec("web", image="Not Valid"), "is not a valid repository/tag"),
    (service_spec("-web"), "name must be valid as a DNS name component"),
    (service_spec("web", Mode={"Replicated": {"Replicas": -1}}), "Replicas: must not be negative"),
    (service_spec("web", Mode={"Cron": {}}), "Mode: Cron is not supported"),
    (
        service_spec("web", Mode={"ReplicatedJob": {}}, UpdateConfig={"Parallelism": 1}),
        "Jobs may not have an update config",
    ),
    (
        service_spec("web", Mode={"ReplicatedJob": {"MaxConcurrent": -1}}),
        "Maximum concurrent jobs must not be negative",
    ),
    (
        service_spec("web", Mode={"ReplicatedJob": {"TotalCompletions": -1}}),
        "Total completed jobs must not be negative",
    ),
    (
        service_spec("web", Mode={"GlobalJob": {}, "Global": {}}),
        "must specify only one service mode",
    ),
    (
        service_spec("web", Mode={"Replicated": {"Replicas": 1}, "Global": {}}),
        "must specify only one service mode",
    ),
    (
        service_spec(
            "web",
            TaskTemplate={
                "ContainerSpec": {"Image": "busybox"},
                "Placement": {"Constraints": ["node.colour==red"]},
            },
        ),
        "unknown key",
    ),
    (
        service_spec(
            "web",
            TaskTemplate={
                "ContainerSpec": {"Image": "busybox"},
                "Placement": {"Constraints": ["node.role>manager"]},
            },
        ),
        "invalid constraint 'node.role>manager'",
    ),
    (
        service_spec("web", EndpointSpec={"Ports": [{"TargetPort": 0}]}),
        "invalid target port 0",
    ),
    (
        service_spec("web", EndpointSpec={"Ports": [{"TargetPort": 80, "Protocol": "icmp"}]}),
        "invalid JSON: EndpointSpec.Ports.0.Protocol: Input should be 'tcp', 'udp' or 'sctp'",
    ),
    (
        service_spec(
            "web",
            EndpointSpec={
                "Ports": [
                    {"TargetPort": 80, "PublishedPort": 8080},
                    {"TargetPort": 81, "PublishedPort": 8080},
                ]
            },
        ),
        "duplicate published ports provided",
    ),
    (
        service_spec(
            "web", EndpointSpec={"Mode": "dnsrr", "Ports": [{"TargetPort": 80, "PublishedPort": 1}]}
        ),
        "can't be used with dnsrr mode",
    ),
    (
        service_spec("web", UpdateConfig={"MaxFailureRatio": 2}),
        "update-maxfailureratio cannot be less than 0 or bigger than 1",
    ),
    (
        service_spec("web", Mode={"Replicated": {"Replicas": "two"}}),
        "Mode.Replicated.Replicas",
    ),
    (
        service_spec("web", TaskTemplate={"ContainerSpec": {"Image": 7}}),
        "TaskTemplate.ContainerSpec.Image",
    ),
    (service_spec("web", UpdateConfig={"Order": "sideways"}), "UpdateConfig.Order"),
]


@pytest.mark.parametrize(("spec", "message"), REFUSED)
async def test_create_refuses_a_bad_spec_and_changes_nothing(client, store, spec, message):
    revision = store.revision
    response = await create(client, spec)
    assert response.status == 400
    assert message in (await response.json())["message"]
    assert store.revision == revision


async def test_create_refuses_malformed_json(client, store):
    revision = store.revision
    response = await client.post(
        "/services/create", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["message"].startswith("invalid JSON")
    response = await client.post("/services/create", json=["a", "list"])
    assert response.status == 400
    assert store.revision == revision


async def test_create_refuses_a_published_port_in_use(client, store):
    ports = {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}
    first = await create(client, service_spec("one", EndpointSpec=ports))
    first_id = (await first.json())["ID"]
    revision = store.revision
    response = await create(client, service_spec("two", EndpointSpec=ports))
    assert response.status == 400
    assert (await response.json())["message"] == (
        f"port '8080' is already in use by service 'one' ({first_id}) as an ingress port"
    )
    assert store.revision == revision


async def test_list_filters(client, store):
    web = await add_service(store, "web", replicas=2, tier="front")
    await add_service(store, "db", replicas=1, tier="back")
    agent = await add_service(store, "agent", replicas=None)

    async def listed(**query):
        response = await client.get("/services", params={"filters": json.dumps(query)})
        assert response.status == 200, await response.text()
        return sorted(s["Spec"]["Name"] for s in await response.json())

    assert await listed() == ["agent", "db", "web"]
    assert await listed(name=["w", "d"]) == ["db", "web"]
    assert await listed(id={web.id[:8]: True}) == ["web"]
    assert await listed(label=["tier"]) == ["db", "web"]
    assert await listed(label=["tier=front"]) == ["web"]
    assert await listed(mode=["global"]) == ["agent"]
    assert await listed(mode=["replicated"]) == ["db", "web"]
    assert await listed(runtime=["container"]) == ["agent", "db", "web"]
    response = await client.get("/services", params={"filters": json.dumps({"image": ["x"]})})
    assert response.status == 400
    assert (await response.json())["message"] == "invalid filter 'image'"
    response = await client.get("/services")
    assert all("ServiceStatus" not in s for s in await response.json())
    assert agent.id in [s["ID"] for s in await response.json()]


async def test_list_with_status_counts_tasks_as_swarm_does(client, store):
    up = await add_node(store, "up")
    down = await add_node(store, "down", state=NodeState.DOWN)
    web = await add_service(store, "web", replicas=3)
    await add_task(store, web, up, slot=1)
    await add_task(store, web, up, slot=2, state=TaskState.STARTING)
    await add_task(store, web, down, slot=3)  # running, but its node is down: not counted
    await add_task(store, web, None, slot=4, state=TaskState.PENDING)
    agent = await add_service(store, "agent", replicas=None)
    await add_task(store, agent, up, slot=None)
    await add_task(store, agent, down, slot=None)
    await add_task(
        store, agent, up, slot=None, state=TaskState.SHUTDOWN, desired=TaskState.SHUTDOWN
    )

    response = await client.get("/services?status=true")
    statuses = {s["Spec"]["Name"]: s["ServiceStatus"] for s in await response.json()}
    assert statuses["web"] == {"RunningTasks": 1, "DesiredTasks": 3, "CompletedTasks": 0}
    assert statuses["agent"] == {"RunningTasks": 1, "DesiredTasks": 1, "CompletedTasks": 0}


async def test_inspect_by_id_name_and_prefix(client, store):
    web = await add_service(store, "web")
    for ref in (web.id, "web", web.id[:4]):
        response = await client.get(f"/services/{ref}?insertDefaults=true")
        assert response.status == 200
        data = await response.json()
        assert data["ID"] == web.id
        assert data["Spec"]["Name"] == "web"


async def test_inspect_an_unknown_service_is_404(client):
    response = await client.get("/services/xyz")
    assert response.status == 404
    assert await response.json() == {"message": "service xyz not found"}


async def test_inspect_an_ambiguous_prefix_is_a_bad_request(client, store):
    ids = [(await add_service(store, f"s{i}")).id for i in range(40)]
    first = [i[0] for i in ids]
    prefix = next(c for c in first if first.count(c) > 1)
    response = await client.get(f"/services/{prefix}")
    assert response.status == 400
    assert (await response.json())["message"].startswith(f"service {prefix} is ambiguous")


async def update(client, service, spec, query=""):
    url = f"/v1.47/services/{service.id}/update?version={service.version.index}{query}"
    return await client.post(url, json=spec)


async def test_update_bumps_the_spec_version_and_keeps_the_previous_spec(client, store):
    web = await add_service(store, "web")
    spec = service_spec("web", image="swarmlet-test/busybox:v2")
    response = await update(client, web, spec)
    assert response.status == 200
    assert await response.json() == {"Warnings": []}
    updated = store.get(Service, web.id)
    assert updated.spec.task_template.container_spec.image == "swarmlet-test/busybox:v2"
    assert updated.previous_spec == web.spec
    assert updated.spec_version == Version(index=2)
    assert updated.version.index > web.version.index


async def test_scaling_leaves_the_tasks_up_to_date(client, store):
    web = await add_service(store, "web")
    response = await update(client, web, service_spec("web", Mode={"Replicated": {"Replicas": 5}}))
    assert response.status == 200
    updated = store.get(Service, web.id)
    assert updated.replicas == 5
    assert updated.spec_version == web.spec_version


async def test_update_with_a_stale_version_changes_nothing(client, store):
    web = await add_service(store, "web")
    assert (await update(client, web, service_spec("web", Labels={"a": "1"}))).status == 200
    revision = store.revision
    response = await update(client, web, service_spec("web", Labels={"a": "2"}))
    assert response.status == 409
    assert "update out of sequence" in (await response.json())["message"]
    assert store.revision == revision


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (service_spec("web", Mode={"Global": {}}), "service mode change is not allowed"),
        (service_spec("other"), "renaming services is not supported"),
        (service_spec("web", image=""), "image reference must be provided"),
        (
            service_spec(
                "web",
                TaskTemplate={
                    "ContainerSpec": {"Image": "busybox"},
                    "Placement": {"Constraints": ["node.labels.zone~east"]},
                },
            ),
            "invalid constraint",
        ),
    ],
)
async def test_update_refuses_and_changes_nothing(client, store, spec, message):
    web = await add_service(store, "web")
    revision = store.revision
    response = await update(client, web, spec)
    assert response.status == 400
    assert message in (await response.json())["message"]
    assert store.revision == revision
    assert store.get(Service, web.id) == web


async def test_update_of_an_unknown_service_is_404(client):
    response = await client.post("/services/nope/update?version=1", json=service_spec("nope"))
    assert response.status == 404
    assert await response.json() == {"message": "service nope not found"}


async def test_rollback_returns_to_the_previous_spec(client, store):
    web = await add_service(store, "web")
    await update(client, web, service_spec("web", image="swarmlet-test/busybox:v2"))
    updated = store.get(Service, web.id)
    response = await update(client, updated, updated.spec.to_api(), "&rollback=previous")
    assert response.status == 200
    rolled = store.get(Service, web.id)
    assert rolled.spec == web.spec
    assert rolled.previous_spec == updated.spec
    assert rolled.update_status is not None
    assert rolled.update_status.state == "rollback_started"
    assert rolled.update_status.message == "manually requested rollback"
    assert rolled.spec_version.index == 3


async def test_rollback_without_a_previous_spec_is_refused(client, store):
    web = await add_service(store, "web")
    response = await update(client, web, web.spec.to_api(), "&rollback=previous")
    assert response.status == 400
    assert "does not have a previous spec" in (await response.json())["message"]
    response = await update(client, web, web.spec.to_api(), "&rollback=sideways")
    assert response.status == 400


async def test_changing_ports_renews_the_endpoint(client, store):
    web = await add_service(store, "web")
    ports = {"Mode": "vip", "Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}
    response = await update(client, web, service_spec("web", EndpointSpec=ports))
    assert response.status == 200
    updated = store.get(Service, web.id)
    assert updated.endpoint is not None
    assert [p.published_port for p in updated.endpoint.ports or []] == [8080]
    assert updated.spec_version.index == 2


async def test_remove_marks_every_task_remove_in_one_commit(client, store):
    node = await add_node(store, "worker")
    web = await add_service(store, "web", replicas=2)
    tasks = [await add_task(store, web, node, slot=1), await add_task(store, web, node, slot=2)]
    other = await add_task(store, await add_service(store, "other"), node)
    watch = store.watch()
    response = await client.delete("/services/web")
    assert response.status == 200
    events = watch.drain()
    assert {e.revision for e in events} == {store.revision}
    assert [e.action for e in events].count(Action.DELETE) == 1
    assert store.find(Service, web.id) is None
    for task in tasks:
        assert store.get(Task, task.id).desired_state == TaskState.REMOVE
    assert store.get(Task, other.id).desired_state == TaskState.RUNNING


async def test_remove_an_unknown_service_is_404(client, store):
    revision = store.revision
    response = await client.delete("/services/nope")
    assert response.status == 404
    assert store.revision == revision
