from __future__ import annotations

import pytest

from swarmlet.api.common import LOCKED, NOT_IN_SWARM, WORKER
from swarmlet.api.control import LocalNodeState
from swarmlet.api.system import swarm_info
from swarmlet.manager.api.system import cluster_swarm_info
from swarmlet.models import Cluster
from tests.api.fakes import require_engine
from tests.manager.api.fakes import add_node


@pytest.mark.parametrize(
    ("state", "manager", "header"),
    [
        (LocalNodeState.ACTIVE, True, "active/manager"),
        (LocalNodeState.ACTIVE, False, "active/worker"),
        (LocalNodeState.INACTIVE, False, "inactive"),
        (LocalNodeState.PENDING, False, "pending"),
        (LocalNodeState.LOCKED, False, "locked"),
        (LocalNodeState.ERROR, False, "error"),
    ],
)
async def test_ping_tells_the_swarm_state(client, control, state, manager, header):
    control.state = state
    if not manager:
        control.store = None
    response = await client.get("/_ping")
    assert response.status == 200
    assert await response.text() == "OK"
    assert response.headers["Api-Version"] == "1.47"
    assert response.headers["Ostype"] == "linux"
    assert response.headers["Docker-Experimental"] == "false"
    assert response.headers["Swarm"] == header


async def test_ping_answers_head_without_a_body(client):
    response = await client.head("/_ping")
    assert response.status == 200
    assert response.headers["Swarm"] == "active/manager"
    assert await response.read() == b""


@pytest.mark.parametrize("version", ["1.24", "1.41", "1.47"])
async def test_routes_answer_under_every_supported_version(client, version):
    assert (await client.get(f"/v{version}/_ping")).status == 200
    response = await client.get(f"/v{version}/services")
    assert response.status == 200
    assert await response.json() == []


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/services/%7Bweb%7D", "service {web} not found"),
        ("DELETE", "/v1.47/services/web%7D", "service web} not found"),
        ("POST", "/nodes/%7B/update?version=1", "node { not found"),
        ("GET", "/secrets/%7B%7D", "secret {} not found"),
    ],
)
async def test_a_reference_with_braces_is_answered_here(client, method, path, message):
    """Found by test_fuzz.py: aiohttp's {id} leaves out '{' and '}', so such a reference
    went through to the engine, whose answer (not a swarm manager) was not this node's."""
    # A node update's spec is checked first, as moby does: it must be a whole one.
    response = await client.request(method, path, json={"Role": "worker", "Availability": "active"})
    assert response.status == 404
    assert await response.json() == {"message": message}


async def test_a_version_too_new_is_refused(client, store):
    response = await client.get("/v1.48/services")
    assert response.status == 400
    assert (await response.json())["message"] == (
        "client version 1.48 is too new. Maximum supported API version is 1.47"
    )


async def test_a_version_too_old_is_refused(client):
    response = await client.get("/v1.23/nodes")
    assert response.status == 400
    assert (
        "client version 1.23 is too old. Minimum supported API version is 1.24"
        in ((await response.json())["message"])
    )


async def test_swarm_info_on_a_manager(control, store):
    await add_node(store, "worker-1")
    info = cluster_swarm_info(control, store)
    cluster = store.cluster()
    assert isinstance(cluster, Cluster)
    assert info["NodeID"] == control.node_id
    assert info["NodeAddr"] == "10.0.0.1"
    assert info["LocalNodeState"] == "active"
    assert info["ControlAvailable"] is True
    assert info["Error"] == ""
    assert info["RemoteManagers"] == [{"NodeID": control.node_id, "Addr": "10.0.0.1:2377"}]
    assert info["Nodes"] == 2
    assert info["Managers"] == 1
    assert info["Cluster"]["ID"] == cluster.id
    assert info["Cluster"]["Version"] == {"Index": cluster.version.index}
    assert info["Cluster"]["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"] == 5
    assert info["Cluster"]["TLSInfo"] == {
        "TrustRoot": "",
        "CertIssuerSubject": "",
        "CertIssuerPublicKey": "",
    }
    assert info["Cluster"]["RootRotationInProgress"] is False
    assert info["Cluster"]["DefaultAddrPool"] is None  # none given at init, as Swarm shows it
    assert info["Cluster"]["SubnetSize"] == 24
    assert info["Cluster"]["DataPathPort"] == 4789
    assert "CreatedAt" in info["Cluster"]
    assert "JoinTokens" not in info["Cluster"]


def test_swarm_info_on_a_worker(control):
    control.store = None
    info = swarm_info(control)
    assert info["LocalNodeState"] == "active"
    assert info["ControlAvailable"] is False
    assert info["RemoteManagers"] == [{"NodeID": "", "Addr": "10.0.0.1:2377"}]
    assert "Cluster" not in info
    assert "Nodes" not in info


def test_swarm_info_outside_a_swarm(control):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    control.node_id = control.node_addr = ""
    control.manager_addrs = []
    info = swarm_info(control)
    assert info == {
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": "inactive",
        "ControlAvailable": False,
        "Error": "",
        "RemoteManagers": None,
    }


async def test_version_is_the_engines_with_our_api_versions(client):
    require_engine()
    response = await client.get("/v1.47/version")
    assert response.status == 200
    data = await response.json()
    assert data["ApiVersion"] == "1.47"
    assert data["MinAPIVersion"] == "1.24"
    assert data["Os"] == "linux"
    assert data["Version"]  # the engine's own version passes through
    engine = [c for c in data.get("Components", []) if c["Name"] == "Engine"]
    assert all(c["Details"]["ApiVersion"] == "1.47" for c in engine)


async def test_info_is_the_engines_with_our_swarm_section(client, control):
    require_engine()
    response = await client.get("/info")
    assert response.status == 200
    data = await response.json()
    assert data["ID"] or data["Name"]  # the engine's own fields pass through
    assert data["Swarm"]["NodeID"] == control.node_id
    assert data["Swarm"]["ControlAvailable"] is True
    assert data["Swarm"]["Cluster"]["ID"] == control.store.cluster().id


def test_not_manager_messages_are_dockers():
    from swarmlet.api.common import not_manager_message

    assert not_manager_message(LocalNodeState.INACTIVE) == NOT_IN_SWARM
    assert not_manager_message(LocalNodeState.ACTIVE) == WORKER
    assert not_manager_message(LocalNodeState.LOCKED) == LOCKED
    assert NOT_IN_SWARM == (
        'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to'
        " connect this node to swarm and try again."
    )
    assert WORKER == (
        "This node is not a swarm manager. Worker nodes can't be used to view or modify"
        " cluster state. Please run this command on a manager node or promote the current"
        " node to a manager."
    )
