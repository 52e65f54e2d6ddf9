"""An empty or omitted optional field takes Swarm's default, and is read back as Swarm reads it.

Go clients send the zero value of a field they leave empty (``"Order": ""`` from `docker stack
deploy`); moby's conversion (daemon/cluster/convert) takes it as the default (``case
types.UpdateOrderStopFirst, "":``) and SwarmKit then answers the converted value. For each such
field: the empty value, null and a missing key give that value; a value outside the field's
set is still a 400 that names the field, and writes nothing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from swarmlet.manager.api.shapes import insert_defaults
from swarmlet.models import SECOND_NS, Network, Node, Service
from tests.manager.api.fakes import add_node, service_spec

Path = tuple[str | int, ...]


def base_spec() -> dict[str, Any]:
    """A service whose every defaulted field holds something other than the default."""
    update = {
        "Parallelism": 1,
        "Delay": SECOND_NS,
        "FailureAction": "rollback",
        "Monitor": 10 * SECOND_NS,
        "MaxFailureRatio": 0,
        "Order": "start-first",
    }
    return service_spec(
        "web",
        TaskTemplate={
            "ContainerSpec": {
                "Image": "swarmlet-test/busybox:latest",
                "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}],
                "Isolation": "default",
            },
            "RestartPolicy": {"Condition": "on-failure"},
            "Runtime": "container",
        },
        UpdateConfig=update,
        RollbackConfig=dict(update),
        EndpointSpec={
            "Mode": "dnsrr",
            "Ports": [
                {"Protocol": "udp", "PublishMode": "host", "TargetPort": 53, "PublishedPort": 53}
            ],
        },
    )


# (where in the ServiceSpec, what Swarm reads back when it is left empty, a value refused)
DEFAULTED: list[tuple[Path, Any, Any]] = [
    (("UpdateConfig", "Order"), "stop-first", "sideways"),
    (("UpdateConfig", "FailureAction"), "pause", "explode"),
    (("UpdateConfig", "Monitor"), 5 * SECOND_NS, "soon"),
    (("RollbackConfig", "Order"), "stop-first", "backwards"),
    (("RollbackConfig", "FailureAction"), "pause", "retry"),
    (("RollbackConfig", "Monitor"), 5 * SECOND_NS, [1]),
    (("TaskTemplate", "RestartPolicy", "Condition"), "any", "sometimes"),
    (("TaskTemplate", "Runtime"), "container", "plugin"),
    (("TaskTemplate", "ContainerSpec", "Isolation"), "default", "hyperv"),
    (("TaskTemplate", "ContainerSpec", "Mounts", 0, "Type"), "bind", "npipe"),
    (("EndpointSpec", "Mode"), "vip", "round-robin"),
    (("EndpointSpec", "Ports", 0, "Protocol"), "tcp", "icmp"),
    (("EndpointSpec", "Ports", 0, "PublishMode"), "ingress", "everywhere"),
]
IDS = [".".join(map(str, path)) for path, _, _ in DEFAULTED]


def at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


def changed(path: Path, value: Any = None, *, drop: bool = False) -> dict[str, Any]:
    spec = base_spec()
    if path[-1] == "PublishMode":
        # An ingress port cannot be used with dnsrr: the default needs the default mode.
        spec["EndpointSpec"]["Mode"] = "vip"
    parent = at(spec, path[:-1])
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return spec


def zero_of(default: Any) -> Any:
    return "" if isinstance(default, str) else 0


async def created(client, spec: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1.47/services/create", json=spec)
    assert response.status == 201, await response.text()
    service_id = (await response.json())["ID"]
    # As `docker service inspect` reads it: with the defaults SwarmKit fills in (a Monitor
    # left empty is written by Swarm only so).
    response = await client.get(f"/v1.47/services/{service_id}?insertDefaults=true")
    assert response.status == 200
    return await response.json()  # type: ignore[no-any-return]


# Fields with one value on Linux: their default is the only thing the base can hold.
ONLY_VALUE = {("TaskTemplate", "Runtime"), ("TaskTemplate", "ContainerSpec", "Isolation")}


def test_the_base_spec_holds_no_default():
    spec = base_spec()
    for path, default, _ in DEFAULTED:
        assert (at(spec, path) == default) == (path in ONLY_VALUE), path


@pytest.mark.parametrize(("path", "default", "wrong"), DEFAULTED, ids=IDS)
async def test_an_empty_value_is_the_default(client, store, path, default, wrong):
    service = await created(client, changed(path, zero_of(default)))
    assert at(service["Spec"], path) == default
    # Stored as the default, not as the empty value: what every controller reads.
    stored = insert_defaults(store.get(Service, service["ID"]).spec.to_api())
    assert at(stored, path) == default


@pytest.mark.parametrize(("path", "default", "wrong"), DEFAULTED, ids=IDS)
async def test_an_omitted_or_null_value_is_the_default(client, path, default, wrong):
    service = await created(client, changed(path, drop=True))
    assert at(service["Spec"], path) == default
    store_spec = changed(path, None)
    store_spec["Name"] = "web2"
    if "Ports" in path:
        store_spec["EndpointSpec"]["Ports"][0]["PublishedPort"] = 54
    service = await created(client, store_spec)
    assert at(service["Spec"], path) == default


@pytest.mark.parametrize(("path", "default", "wrong"), DEFAULTED, ids=IDS)
async def test_a_wrong_value_is_refused_naming_the_field(client, store, path, default, wrong):
    revision = store.revision
    response = await client.post("/v1.47/services/create", json=changed(path, wrong))
    assert response.status == 400
    message = (await response.json())["message"]
    assert message.startswith(f"invalid JSON: {'.'.join(map(str, path))}: "), message
    assert store.revision == revision


async def test_the_cli_stacks_update_config_is_taken(client, store):
    """The bug of issue 11: `docker stack deploy` with `update_config: {parallelism: 1,
    delay: 1s}` sends this UpdateConfig (Go's zero values for the rest)."""
    sent = {
        "Parallelism": 1,
        "Delay": SECOND_NS,
        "MaxFailureRatio": 0,
        "Order": "",
    }
    spec = service_spec("web", UpdateConfig=sent, RollbackConfig=dict(sent))
    service = await created(client, spec)
    expected = {
        "Parallelism": 1,
        "Delay": SECOND_NS,
        "FailureAction": "pause",
        "Monitor": 5 * SECOND_NS,
        "MaxFailureRatio": 0,
        "Order": "stop-first",
    }
    assert service["Spec"]["UpdateConfig"] == expected
    assert service["Spec"]["RollbackConfig"] == expected
    # Deployed again unchanged: an update with the same body leaves the tasks alone.
    current = store.get(Service, service["ID"])
    url = f"/v1.47/services/{current.id}/update?version={current.version.index}"
    response = await client.post(url, json=spec)
    assert response.status == 200, await response.text()
    assert store.get(Service, current.id).spec_version == current.spec_version


async def test_a_mount_keeps_what_the_engine_reads(client):
    mount = {
        "Source": "data",
        "Target": "/data",
        "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "st"}},
    }
    spec = base_spec()
    spec["TaskTemplate"]["ContainerSpec"]["Mounts"] = [mount]
    service = await created(client, spec)
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"] == [{"Type": "bind", **mount}]


# The cluster: a zero is SwarmKit's default (moby's MergeSwarmSpecToGRPC keeps it for zeros).

CLUSTER_DEFAULTED: list[tuple[Path, Any, Any]] = [
    (("Name",), "default", 7),
    (("Raft", "SnapshotInterval"), 10000, "often"),
    (("Raft", "LogEntriesForSlowFollowers"), 500, "many"),
    (("Raft", "ElectionTick"), 10, "ten"),
    (("Raft", "HeartbeatTick"), 1, "one"),
    (("Dispatcher", "HeartbeatPeriod"), 5 * SECOND_NS, "5s"),
    (("CAConfig", "NodeCertExpiry"), 90 * 24 * 3600 * SECOND_NS, "90d"),
]


async def swarm_update(client, store, change: Any) -> Any:
    cluster = store.cluster()
    spec = cluster.spec.to_api()
    spec["Raft"].update(SnapshotInterval=5, LogEntriesForSlowFollowers=6)
    spec["Raft"].update(ElectionTick=20, HeartbeatTick=2)
    spec["Dispatcher"]["HeartbeatPeriod"] = 7 * SECOND_NS
    spec["CAConfig"]["NodeCertExpiry"] = 48 * 3600 * SECOND_NS
    change(spec)
    url = f"/v1.47/swarm/update?version={cluster.version.index}"
    return await client.post(url, json=spec)


@pytest.mark.parametrize(("path", "default", "wrong"), CLUSTER_DEFAULTED)
@pytest.mark.parametrize("how", ["zero", "null", "omitted"])
async def test_a_zero_in_the_swarm_spec_is_the_default(client, store, path, default, wrong, how):
    def change(spec: dict[str, Any]) -> None:
        parent = at(spec, path[:-1])
        if how == "omitted":
            del parent[path[-1]]
        else:
            parent[path[-1]] = zero_of(default) if how == "zero" else None

    response = await swarm_update(client, store, change)
    assert response.status == 200, await response.text()
    answer = await (await client.get("/v1.47/swarm")).json()
    assert at(answer["Spec"], path) == default


@pytest.mark.parametrize(("path", "default", "wrong"), CLUSTER_DEFAULTED)
async def test_a_wrong_value_in_the_swarm_spec_is_refused(client, store, path, default, wrong):
    revision = store.revision

    def change(spec: dict[str, Any]) -> None:
        at(spec, path[:-1])[path[-1]] = wrong

    response = await swarm_update(client, store, change)
    assert response.status == 400
    message = (await response.json())["message"]
    assert message.startswith(f"invalid JSON: {'.'.join(path)}: "), message
    assert store.revision == revision


# Networks: an empty IPAM driver is the default one (moby's BasicNetworkCreateToGRPC).


@pytest.mark.parametrize("driver", ["", None, "omitted"])
async def test_an_empty_ipam_driver_is_the_default(client, store, driver):
    ipam: dict[str, Any] = {"Config": [{"Subnet": "10.9.0.0/24"}]}
    if driver != "omitted":
        ipam["Driver"] = driver
    body = {"Name": "front", "Driver": "overlay", "IPAM": ipam}
    response = await client.post("/v1.47/networks/create", json=body)
    assert response.status == 201, await response.text()
    network = store.get(Network, (await response.json())["Id"])
    assert network.ipam.driver == "default"
    shown = await (await client.get(f"/v1.47/networks/{network.id}")).json()
    assert shown["IPAM"]["Driver"] == "default"


async def test_another_ipam_driver_is_still_refused(client, store):
    revision = store.revision
    body = {"Name": "front", "Driver": "overlay", "IPAM": {"Driver": "dhcp"}}
    response = await client.post("/v1.47/networks/create", json=body)
    assert response.status == 404
    assert (await response.json())["message"] == 'plugin "dhcp" not found'
    assert store.revision == revision


# Nodes: Role and Availability have no default in Swarm (NodeSpecToGRPC refuses them empty).


@pytest.mark.parametrize("field", ["Role", "Availability"])
@pytest.mark.parametrize("how", ["omitted", "null", "empty"])
async def test_a_node_update_needs_a_role_and_an_availability(client, store, field, how):
    node = await add_node(store, "worker-1")
    spec: dict[str, Any] = {"Labels": {}, "Role": "worker", "Availability": "active"}
    if how == "omitted":
        del spec[field]
    else:
        spec[field] = None if how == "null" else ""
    revision = store.revision
    url = f"/v1.47/nodes/{node.id}/update?version={node.version.index}"
    response = await client.post(url, json=spec)
    assert response.status == 400
    message = (await response.json())["message"]
    if how == "empty":
        assert message.startswith(f"invalid JSON: {field}: Input should be "), message
    else:
        assert message == f'invalid {field}: ""'
    assert store.revision == revision
    assert store.get(Node, node.id) == node


async def test_a_whole_node_spec_is_taken(client, store):
    node = await add_node(store, "worker-1")
    spec = copy.deepcopy(node.spec.to_api())
    spec["Availability"] = "drain"
    url = f"/v1.47/nodes/{node.id}/update?version={node.version.index}"
    response = await client.post(url, json=spec)
    assert response.status == 200, await response.text()
    assert store.get(Node, node.id).spec.availability == "drain"
