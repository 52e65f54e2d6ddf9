from __future__ import annotations

import json

import pytest

from swarmlet.models import Node, NodeRole, NodeState
from tests.manager.api.fakes import add_node


@pytest.fixture
async def workers(store):
    return [
        await add_node(store, "worker-1", labels={"zone": "east"}, engine_labels={"ssd": "true"}),
        await add_node(store, "worker-2", labels={"zone": "west"}, state=NodeState.DOWN),
    ]


async def names(response) -> list[str]:
    assert response.status == 200, await response.text()
    return sorted(node["Description"]["Hostname"] for node in await response.json())


def filters(**values) -> dict[str, str]:
    return {"filters": json.dumps({key.replace("_", "."): v for key, v in values.items()})}


async def test_list_gives_every_node_in_the_apis_shape(client, store, workers):
    response = await client.get("/v1.47/nodes")
    assert await names(response) == ["manager-1", "worker-1", "worker-2"]
    worker = next(n for n in await response.json() if n["ID"] == workers[0].id)
    assert worker["Spec"] == {
        "Labels": {"zone": "east"},
        "Role": "worker",
        "Availability": "active",
    }
    assert worker["Status"] == {"State": "ready", "Addr": "10.0.0.9"}
    assert worker["Description"]["Engine"]["Labels"] == {"ssd": "true"}
    assert worker["Version"]["Index"] == workers[0].version.index


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"role": {"manager": True}}, ["manager-1"]),
        ({"role": ["worker"]}, ["worker-1", "worker-2"]),
        ({"name": ["worker-"]}, ["worker-1", "worker-2"]),
        ({"name": {"manager": True, "worker-2": True}}, ["manager-1", "worker-2"]),
        ({"node.label": ["zone=east"]}, ["worker-1"]),
        ({"node.label": ["zone"]}, ["worker-1", "worker-2"]),
        ({"label": ["ssd=true"]}, ["worker-1"]),
        ({"membership": ["accepted"]}, ["manager-1", "worker-1", "worker-2"]),
        ({"membership": ["pending"]}, []),
    ],
)
async def test_list_filters(client, workers, query, expected):
    response = await client.get("/nodes", params={"filters": json.dumps(query)})
    assert await names(response) == expected


async def test_list_filters_by_id_prefix(client, workers):
    query = {"id": [workers[1].id[:6]]}
    response = await client.get("/nodes", params={"filters": json.dumps(query)})
    assert [n["ID"] for n in await response.json()] == [workers[1].id]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"colour": ["red"]}, "invalid filter 'colour'"),
        ({"role": ["boss"]}, "Invalid role filter: 'boss'"),
        ({"membership": ["maybe"]}, "Invalid membership filter: 'maybe'"),
    ],
)
async def test_list_refuses_bad_filters(client, query, message):
    response = await client.get("/nodes", params={"filters": json.dumps(query)})
    assert response.status == 400
    assert (await response.json())["message"] == message


async def test_list_refuses_filters_that_are_not_json(client):
    response = await client.get("/nodes", params={"filters": "{nope"})
    assert response.status == 400


async def test_inspect_by_id_hostname_prefix_and_self(client, control, workers):
    node = workers[0]
    for ref in (node.id, "worker-1", node.id[:5]):
        response = await client.get(f"/nodes/{ref}")
        assert response.status == 200
        assert (await response.json())["ID"] == node.id
    response = await client.get("/nodes/self")
    assert (await response.json())["ID"] == control.node_id


async def test_inspect_an_unknown_node_is_404(client):
    response = await client.get("/nodes/xyz")
    assert response.status == 404
    assert await response.json() == {"message": "node xyz not found"}


async def test_inspect_an_ambiguous_prefix_is_a_bad_request(client, store):
    ids = [(await add_node(store, f"n{i}")).id for i in range(40)]
    # 40 random IDs in base 36 share a first character somewhere.
    first = [i[0] for i in ids]
    prefix = next(c for c in first if first.count(c) > 1)
    response = await client.get(f"/nodes/{prefix}")
    assert response.status == 400
    message = (await response.json())["message"]
    assert message.startswith(f"node {prefix} is ambiguous (")
    assert "matches found)" in message


async def test_update_changes_the_spec(client, store, workers):
    node = workers[0]
    spec = {"Labels": {"zone": "north"}, "Role": "worker", "Availability": "drain"}
    response = await client.post(f"/nodes/{node.id}/update?version={node.version.index}", json=spec)
    assert response.status == 200, await response.text()
    updated = store.get(Node, node.id)
    assert updated.spec.labels == {"zone": "north"}
    assert updated.spec.availability == "drain"
    assert updated.version.index > node.version.index


async def test_update_with_a_stale_version_changes_nothing(client, store, workers):
    node = workers[0]
    url = f"/nodes/worker-1/update?version={node.version.index}"
    pause = {"Role": "worker", "Availability": "pause"}
    assert (await client.post(url, json=pause)).status == 200
    revision = store.revision
    response = await client.post(url, json={"Role": "worker", "Availability": "active"})
    assert response.status == 409
    assert "update out of sequence" in (await response.json())["message"]
    assert store.revision == revision
    assert store.get(Node, node.id).spec.availability == "pause"


async def test_update_refuses_a_bad_spec_naming_the_field(client, store, workers):
    node = workers[0]
    revision = store.revision
    url = f"/nodes/{node.id}/update?version={node.version.index}"
    response = await client.post(url, json={"Role": "boss"})
    assert response.status == 400
    assert "Role" in (await response.json())["message"]
    response = await client.post(f"/nodes/{node.id}/update", json={})
    assert response.status == 400
    assert store.revision == revision


async def test_demoting_the_last_manager_is_refused(client, store, control):
    manager = store.get(Node, control.node_id)
    revision = store.revision
    url = f"/nodes/{manager.id}/update?version={manager.version.index}"
    response = await client.post(url, json={"Role": "worker", "Availability": "active"})
    assert response.status == 400
    assert await response.json() == {
        "message": "attempting to demote the last manager of the swarm"
    }
    assert store.revision == revision


async def test_demoting_one_of_two_managers_is_allowed(client, store, control):
    # Not the leader: swarmlet's leader cannot be demoted (tests/manager/api/test_roles.py).
    manager = await add_node(store, "manager-2", role=NodeRole.MANAGER)
    url = f"/nodes/{manager.id}/update?version={manager.version.index}"
    response = await client.post(url, json={"Role": "worker", "Availability": "active"})
    assert response.status == 200
    assert store.get(Node, manager.id).spec.role == "worker"


async def test_removing_a_ready_node_needs_force(client, store, workers):
    node = workers[0]
    revision = store.revision
    response = await client.delete(f"/nodes/{node.id}")
    assert response.status == 400
    assert await response.json() == {"message": f"node {node.id} is not down and can't be removed"}
    assert store.revision == revision
    response = await client.delete(f"/nodes/{node.id}?force=true")
    assert response.status == 200
    assert store.find(Node, node.id) is None


async def test_removing_a_down_node_needs_no_force(client, store, workers):
    response = await client.delete("/nodes/worker-2")
    assert response.status == 200
    assert store.find(Node, workers[1].id) is None


async def test_removing_a_manager_is_refused_even_with_force(client, store, control):
    response = await client.delete(f"/nodes/{control.node_id}?force=1")
    assert response.status == 400
    assert "must be demoted to worker before removal" in (await response.json())["message"]
    assert store.find(Node, control.node_id) is not None
