"""Autolock through the API: a locked manager, /swarm/unlock, /swarm/unlockkey, rotation."""

from __future__ import annotations

import pytest

from swarmlet.api.app import ROUTES
from swarmlet.api.backend import Endpoint
from swarmlet.api.common import LOCKED, LOCKED_LEAVE, NOT_IN_SWARM, WORKER
from swarmlet.api.control import LocalNodeState
from swarmlet.api.system import swarm_info
from swarmlet.manager.store.encryption import new_unlock_key

# What a node answers whatever its state: the system endpoints, joining and leaving, the
# unlock itself, and the networks (passed to the engine when not a manager).
_NOT_MANAGER_ONLY = {
    "ping",
    "version",
    "swarm.init",
    "swarm.join",
    "swarm.leave",
    "swarm.unlock",
    Endpoint.INFO,
    Endpoint.NETWORK_LIST,
    Endpoint.NETWORK_INSPECT,
    Endpoint.NETWORK_REMOVE,
    Endpoint.NETWORK_CREATE,
}
MANAGER_ROUTES = [
    (method, path.replace("{id}", "x"))
    for method, path, answer in ROUTES
    if answer not in _NOT_MANAGER_ONLY
]


async def autolocked(control) -> str:
    return await control.set_autolock(True, rotate=False)


async def locked(control) -> str:
    key = await autolocked(control)
    control.restart_locked()
    return key


# A locked node


@pytest.mark.parametrize(("method", "path"), MANAGER_ROUTES)
async def test_a_locked_node_refuses_every_manager_endpoint(client, control, method, path):
    await locked(control)
    response = await client.request(method, f"/v1.47{path}?version=1", json={})
    assert response.status == 503
    assert (await response.json()) == {"message": LOCKED}


async def test_a_locked_node_refuses_overlay_networks(client, control):
    await locked(control)
    body = {"Name": "backend", "Driver": "overlay"}
    response = await client.post("/networks/create", json=body)
    assert response.status == 503
    assert (await response.json())["message"] == LOCKED


async def test_a_locked_node_says_so_in_ping_and_info(client, control):
    await locked(control)
    response = await client.get("/_ping")
    assert response.headers["Swarm"] == "locked"
    info = swarm_info(control)
    assert info["LocalNodeState"] == "locked"
    assert info["ControlAvailable"] is False
    assert info["Error"] == LOCKED
    assert "Cluster" not in info


async def test_a_locked_node_leaves_only_by_force(client, control):
    await locked(control)
    response = await client.post("/swarm/leave")
    assert response.status == 503
    assert (await response.json())["message"] == LOCKED_LEAVE
    assert control.leaves == []
    response = await client.post("/swarm/leave?force=true")
    assert response.status == 200
    assert control.leaves == [True]


# /swarm/unlock


async def test_the_right_key_unlocks(client, control, store):
    key = await locked(control)
    response = await client.post("/v1.47/swarm/unlock", json={"UnlockKey": key})
    assert response.status == 200
    assert control.state is LocalNodeState.ACTIVE
    assert control.store is store
    assert (await client.get("/_ping")).headers["Swarm"] == "active/manager"
    assert (await client.get("/swarm")).status == 200


async def test_a_wrong_key_is_unauthorized_and_the_node_stays_locked(client, control):
    await locked(control)
    response = await client.post("/swarm/unlock", json={"UnlockKey": new_unlock_key()})
    assert response.status == 401
    assert (await response.json()) == {
        "message": "swarm could not be unlocked: invalid key provided"
    }
    assert control.state is LocalNodeState.LOCKED
    assert (await client.get("/swarm")).status == 503


@pytest.mark.parametrize("key", ["", "SWMKEY-2-abc", "SWMKEY-1-not base64"])
async def test_a_malformed_key_is_a_bad_request(client, control, key):
    await locked(control)
    response = await client.post("/swarm/unlock", json={"UnlockKey": key})
    assert response.status == 400
    assert (await response.json()) == {"message": "invalid key string"}
    assert control.state is LocalNodeState.LOCKED


async def test_unlocking_an_unlocked_manager_is_a_conflict(client, control):
    key = await autolocked(control)
    response = await client.post("/swarm/unlock", json={"UnlockKey": key})
    assert response.status == 409
    assert (await response.json()) == {"message": "swarm is not locked"}


@pytest.mark.parametrize(
    ("state", "message"),
    [(LocalNodeState.INACTIVE, NOT_IN_SWARM), (LocalNodeState.ACTIVE, WORKER)],
)
async def test_unlocking_a_node_that_is_no_manager_is_unavailable(client, control, state, message):
    control.state = state
    control.store = None
    response = await client.post("/swarm/unlock", json={"UnlockKey": new_unlock_key()})
    assert response.status == 503
    assert (await response.json()) == {"message": message}


# /swarm/unlockkey, autolock and rotation


async def test_the_unlock_key_is_empty_without_autolock(client):
    response = await client.get("/v1.47/swarm/unlockkey")
    assert response.status == 200
    assert await response.json() == {"UnlockKey": ""}


async def update_swarm(client, store, autolock_managers: bool, query: str = ""):
    cluster = store.cluster()
    spec = cluster.spec.to_api()
    spec["EncryptionConfig"] = {"AutoLockManagers": autolock_managers}
    return await client.post(
        f"/v1.47/swarm/update?version={cluster.version.index}{query}", json=spec
    )


async def test_autolock_on_rotate_and_off_through_swarm_update(client, control, store):
    assert (await update_swarm(client, store, True)).status == 200
    assert store.cluster().spec.encryption_config.auto_lock_managers is True
    first = (await (await client.get("/swarm/unlockkey")).json())["UnlockKey"]
    assert first.startswith("SWMKEY-1-")

    assert (await update_swarm(client, store, True)).status == 200  # no change, same key
    assert control.unlock_key() == first
    assert (await update_swarm(client, store, True, "&rotateManagerUnlockKey=true")).status == 200
    second = (await (await client.get("/swarm/unlockkey")).json())["UnlockKey"]
    assert second.startswith("SWMKEY-1-")
    assert second != first

    assert (await update_swarm(client, store, False)).status == 200
    assert await (await client.get("/swarm/unlockkey")).json() == {"UnlockKey": ""}
    assert control.autolocks == [(True, False), (True, True), (False, False)]


async def test_rotation_without_autolock_changes_nothing(client, control, store):
    response = await update_swarm(client, store, False, "&rotateManagerUnlockKey=1")
    assert response.status == 200
    assert control.autolocks == []
    assert control.unlock_key() == ""


async def test_a_stale_update_changes_no_key(client, control, store):
    stale = store.cluster().version.index
    assert (await update_swarm(client, store, False)).status == 200
    spec = store.cluster().spec.to_api() | {"EncryptionConfig": {"AutoLockManagers": True}}
    response = await client.post(f"/swarm/update?version={stale}", json=spec)
    assert response.status == 409
    assert control.autolocks == []


async def test_init_with_autolock_sets_a_key(client, control):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    body = {"ListenAddr": "0.0.0.0:2377", "Spec": {"EncryptionConfig": {"AutoLockManagers": True}}}
    response = await client.post("/swarm/init", json=body)
    assert response.status == 200
    key = (await (await client.get("/swarm/unlockkey")).json())["UnlockKey"]
    assert key.startswith("SWMKEY-1-")
    assert control.autolocks == [(True, False)]


async def test_the_unlock_key_is_for_managers_only(client, control):
    control.store = None
    response = await client.get("/swarm/unlockkey")
    assert response.status == 503
    assert (await response.json()) == {"message": WORKER}


# The stock CLI


async def test_cli_unlock_key_and_rotate(cli, served, control, store):
    with pytest.raises(AssertionError, match="no unlock key is set"):
        await cli(served, "swarm", "unlock-key", "-q")
    with pytest.raises(AssertionError, match="cannot rotate because autolock is not turned on"):
        await cli(served, "swarm", "unlock-key", "--rotate")

    out = await cli(served, "swarm", "update", "--autolock=true")
    key = control.unlock_key()
    assert key.startswith("SWMKEY-1-")
    assert key in out  # the CLI prints the new key
    assert (await cli(served, "swarm", "unlock-key", "-q")).strip() == key

    rotated = (await cli(served, "swarm", "unlock-key", "--rotate", "-q")).strip()
    assert rotated == control.unlock_key()
    assert rotated != key

    await cli(served, "swarm", "update", "--autolock=false")
    assert control.unlock_key() == ""
    assert store.cluster().spec.encryption_config.auto_lock_managers is False


async def test_cli_unlock_reads_the_key_from_stdin(cli, served, control, store):
    with pytest.raises(AssertionError, match="swarm is not locked"):
        await cli(served, "swarm", "unlock", stdin=b"")
    key = await locked(control)

    info = await cli(served, "info", "--format", "{{.Swarm.LocalNodeState}}")
    assert info.strip() == "locked"
    with pytest.raises(AssertionError, match="swarm could not be unlocked: invalid key provided"):
        await cli(served, "swarm", "unlock", stdin=new_unlock_key().encode() + b"\n")
    assert control.state is LocalNodeState.LOCKED
    with pytest.raises(AssertionError, match="Swarm is encrypted and needs to be unlocked"):
        await cli(served, "service", "ls")

    await cli(served, "swarm", "unlock", stdin=key.encode() + b"\n")
    assert control.state is LocalNodeState.ACTIVE
    assert control.store is store
    await cli(served, "service", "ls")


async def test_cli_unlock_outside_a_swarm(cli, served, control):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    with pytest.raises(AssertionError, match="This node is not part of a swarm"):
        await cli(served, "swarm", "unlock", stdin=b"")
