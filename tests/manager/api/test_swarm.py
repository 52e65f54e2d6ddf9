from __future__ import annotations

import pytest

from swarmlet.api.common import NOT_IN_SWARM, WORKER
from swarmlet.api.control import LocalNodeState
from swarmlet.manager.api.swarm import rotate_token
from tests.manager.api.fakes import CA_DIGEST, token


async def test_inspect_gives_the_cluster_as_the_apis_swarm(client, store):
    cluster = store.cluster()
    response = await client.get("/v1.47/swarm")
    assert response.status == 200
    data = await response.json()
    assert data["ID"] == cluster.id
    assert data["Version"] == {"Index": cluster.version.index}
    assert data["JoinTokens"] == {"Worker": token("worker1"), "Manager": token("manager1")}
    assert data["Spec"]["Name"] == "default"
    assert data["Spec"]["Dispatcher"]["HeartbeatPeriod"] == 5_000_000_000
    assert data["TLSInfo"]["TrustRoot"] == ""
    assert data["RootRotationInProgress"] is False
    assert data["DefaultAddrPool"] is None  # none given at init, as Swarm shows it


@pytest.mark.parametrize(
    ("state", "message"),
    [(LocalNodeState.INACTIVE, NOT_IN_SWARM), (LocalNodeState.ACTIVE, WORKER)],
)
async def test_inspect_refuses_when_not_a_manager(client, control, state, message):
    control.state = state
    control.store = None
    response = await client.get("/swarm")
    assert response.status == 503
    assert (await response.json()) == {"message": message}


async def test_init_makes_this_node_a_manager(client, control):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    body = {
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "192.168.1.5",
        "ForceNewCluster": False,
        "Spec": {"Orchestration": {"TaskHistoryRetentionLimit": 3}},
    }
    response = await client.post("/v1.47/swarm/init", json=body)
    assert response.status == 200
    assert await response.json() == control.node_id
    (request,) = control.inits
    assert request.listen_addr == "0.0.0.0:2377"
    assert request.advertise_addr == "192.168.1.5"
    assert request.spec == {"Orchestration": {"TaskHistoryRetentionLimit": 3}}
    ping = await client.get("/_ping")
    assert ping.headers["Swarm"] == "active/manager"


async def test_init_refuses_a_malformed_spec_naming_the_field(client, control):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    body = {"Spec": {"Orchestration": {"TaskHistoryRetentionLimit": "many"}}}
    response = await client.post("/swarm/init", json=body)
    assert response.status == 400
    assert "Orchestration.TaskHistoryRetentionLimit" in (await response.json())["message"]
    assert control.inits == []


async def test_init_in_a_swarm_is_unavailable(client):
    response = await client.post("/swarm/init", json={})
    assert response.status == 503
    assert "already part of a swarm" in (await response.json())["message"]


async def test_join_passes_the_request_on(client, control):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    body = {
        "RemoteAddrs": ["10.0.0.1:2377"],
        "JoinToken": token("worker1"),
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "10.0.0.2",
    }
    response = await client.post("/swarm/join", json=body)
    assert response.status == 200
    (request,) = control.joins
    assert request.remote_addrs == ("10.0.0.1:2377",)
    assert request.join_token == token("worker1")
    assert request.advertise_addr == "10.0.0.2"


async def test_join_with_a_bad_token_is_a_bad_request(client, control):
    control.state = LocalNodeState.INACTIVE
    response = await client.post("/swarm/join", json={"RemoteAddrs": ["x"], "JoinToken": "x"})
    assert response.status == 400


async def test_leave_passes_force(client, control):
    response = await client.post("/swarm/leave?force=1")
    assert response.status == 200
    assert control.leaves == [True]
    response = await client.post("/swarm/leave")
    assert response.status == 503


async def test_update_changes_the_spec(client, store):
    cluster = store.cluster()
    spec = cluster.spec.to_api() | {"Labels": {"env": "test"}}
    response = await client.post(f"/swarm/update?version={cluster.version.index}", json=spec)
    assert response.status == 200
    updated = store.cluster()
    assert updated.spec.labels == {"env": "test"}
    assert updated.join_tokens == cluster.join_tokens


async def test_update_with_a_stale_version_changes_nothing(client, store):
    cluster = store.cluster()
    stale = cluster.version.index
    await client.post(f"/swarm/update?version={stale}", json=cluster.spec.to_api())
    revision = store.revision
    response = await client.post(f"/swarm/update?version={stale}", json=cluster.spec.to_api())
    assert response.status == 409
    assert "update out of sequence" in (await response.json())["message"]
    assert store.revision == revision


async def test_update_needs_a_version(client, store):
    response = await client.post("/swarm/update?version=abc", json={})
    assert response.status == 400
    assert "invalid swarm version 'abc'" in (await response.json())["message"]


async def test_rotating_a_token_keeps_the_ca_digest(client, store):
    cluster = store.cluster()
    response = await client.post(
        f"/swarm/update?version={cluster.version.index}&rotateWorkerToken=true",
        json=cluster.spec.to_api(),
    )
    assert response.status == 200
    tokens = store.cluster().join_tokens
    assert tokens.manager == token("manager1")
    assert tokens.worker != token("worker1")
    prefix, secret = tokens.worker.rsplit("-", 1)
    assert prefix == f"SWMTKN-1-{CA_DIGEST}"
    assert len(secret) == 25


def test_rotate_token_replaces_only_the_secret():
    rotated = rotate_token(token("abc"))
    assert rotated.startswith(f"SWMTKN-1-{CA_DIGEST}-")
    assert rotated != token("abc")
