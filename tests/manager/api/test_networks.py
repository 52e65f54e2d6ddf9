"""/networks: overlay networks from the store, local ones from the engine; services on them."""

from __future__ import annotations

import json
import os

import pytest

from swarmlet.manager.allocator import NO_INGRESS
from swarmlet.manager.store import Op
from swarmlet.models import (
    Network,
    NetworkAttachment,
    Service,
    Task,
    TaskState,
)
from tests.api.fakes import require_engine
from tests.manager.api.fakes import add_node, add_task, service_spec


async def create(client, **body):
    return await client.post("/v1.47/networks/create", json=body)


async def overlay(client, name="dockercoins", **body):
    response = await create(client, Name=name, Driver="overlay", **body)
    assert response.status == 201, await response.text()
    return (await response.json())["Id"]


def network_named(store, name) -> Network:
    found = store.by_name(Network, name)
    assert found is not None
    return found


async def create_service(client, name="web", **extra):
    return await client.post("/v1.47/services/create", json=service_spec(name, **extra))


@pytest.fixture
def engine():
    require_engine()


# Create and inspect


async def test_create_an_overlay_network_allocates_it_at_once(client, store):
    response = await create(
        client,
        Name="dockercoins",
        Driver="overlay",
        CheckDuplicate=True,
        Attachable=True,
        Labels={"tier": "back"},
        Options={"com.docker.network.driver.mtu": "1400"},
        IPAM={"Driver": "default", "Config": None},
    )
    assert response.status == 201
    body = await response.json()
    assert body["Warning"] == ""
    stored = store.get(Network, body["Id"])
    assert len(stored.id) == 25
    assert (stored.subnet, stored.gateway, stored.vni) == ("10.0.1.0/24", "10.0.1.1", 4097)
    assert stored.attachable
    assert stored.labels == {"tier": "back"}

    response = await client.get("/v1.47/networks/dockercoins")
    assert response.status == 200
    shown = await response.json()
    assert shown["Id"] == stored.id
    assert shown["Name"] == "dockercoins"
    assert shown["Scope"] == "swarm"
    assert shown["Driver"] == "overlay"
    assert shown["IPAM"]["Driver"] == "default"
    assert shown["IPAM"]["Config"] == [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}]
    assert shown["Options"] == {
        "com.docker.network.driver.mtu": "1400",
        "com.docker.network.driver.overlay.vxlanid_list": "4097",
    }
    assert shown["Labels"] == {"tier": "back"}
    assert shown["Containers"] == {}
    assert shown["ConfigFrom"] == {"Network": ""}
    assert (shown["Attachable"], shown["Internal"], shown["Ingress"]) == (True, False, False)
    assert shown["Created"].endswith("Z")
    for ref in (stored.id, stored.id[:6]):
        response = await client.get(f"/networks/{ref}")
        assert (await response.json())["Id"] == stored.id


async def test_a_given_subnet_and_gateway_are_used(client, store):
    config = {"Config": [{"Subnet": "172.28.0.0/16", "Gateway": "172.28.5.254"}]}
    await overlay(client, "custom", IPAM=config, Internal=True)
    stored = network_named(store, "custom")
    assert (stored.subnet, stored.gateway, stored.internal) == (
        "172.28.0.0/16",
        "172.28.5.254",
        True,
    )


REFUSED = [
    (
        {"IPAM": {"Config": [{"Subnet": "10.0.0.0/16"}]}},
        400,
        "invalid pool request: Pool overlaps with other one on this address space",
    ),
    ({"IPAM": {"Config": [{"Subnet": "8.8.0.0/16"}]}}, 400, "not inside a private address"),
    ({"IPAM": {"Config": [{"Subnet": "10.7.0.0/24", "Gateway": "10.8.0.1"}]}}, 400, "gateway"),
    ({"IPAM": {"Driver": "foo"}}, 404, 'plugin "foo" not found'),
    ({"Name": "bridge"}, 400, "bridge is a pre-defined network and cannot be created"),
    ({"Name": ""}, 400, "name must be provided"),
    ({"Ingress": True}, 409, "is already present"),
    ({"EnableIPv6": True}, 400, "IPv6 is not supported"),
    ({"Options": {"encrypted": ""}}, 400, "encrypted overlay networks are not supported"),
    ({"Labels": {"com.docker.swarm.internal": "x"}}, 400, "is for predefined internal"),
    ({"Internal": "sometimes"}, 400, "Internal"),
    ({"Scope": "swarm", "Driver": "bridge"}, 400, "use the overlay driver"),
]


@pytest.mark.parametrize(("extra", "status", "message"), REFUSED)
async def test_bad_creates_are_refused_and_change_nothing(client, store, extra, status, message):
    revision = store.revision
    body = {"Name": "bad", "Driver": "overlay", **extra}
    response = await client.post("/networks/create", json=body)
    assert response.status == status
    assert message in (await response.json())["message"]
    assert store.revision == revision


async def test_a_duplicate_name_is_a_conflict(client, store):
    await overlay(client)
    revision = store.revision
    response = await create(client, Name="dockercoins", Driver="overlay")
    assert response.status == 409
    assert (await response.json())["message"] == "network with name dockercoins already exists"
    assert store.revision == revision
    assert [n.name for n in store.all(Network)].count("dockercoins") == 1


async def test_malformed_json_is_refused(client, store):
    revision = store.revision
    response = await client.post(
        "/networks/create", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["message"].startswith("invalid JSON")
    assert store.revision == revision


async def test_an_unknown_driver_is_the_engines_to_refuse(client, store, engine):
    revision = store.revision
    response = await create(client, Name="swarmlet-test-nope", Driver="foo")
    assert response.status == 404
    assert (await response.json())["message"] == 'plugin "foo" not found'
    assert store.revision == revision


async def test_an_unknown_network_is_404(client, store, engine):
    response = await client.get("/networks/swarmlet-test-nope")
    assert response.status == 404
    assert "swarmlet-test-nope not found" in (await response.json())["message"]
    response = await client.get("/networks/swarmlet-test-nope?scope=swarm")
    assert response.status == 404
    assert (await response.json())["message"] == "network swarmlet-test-nope not found"
    revision = store.revision
    response = await client.delete("/networks/swarmlet-test-nope")
    assert response.status == 404
    assert store.revision == revision


# List


async def test_list_shows_the_engines_networks_and_ours(client, store, engine):
    await overlay(client)
    response = await client.get("/v1.47/networks")
    assert response.status == 200
    listed = {n["Name"]: n for n in await response.json()}
    assert {"bridge", "host", "none", "ingress", "dockercoins"} <= set(listed)
    assert (listed["dockercoins"]["Driver"], listed["dockercoins"]["Scope"]) == ("overlay", "swarm")
    assert listed["ingress"]["Ingress"] is True
    assert listed["bridge"]["Scope"] == "local"


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({"driver": {"overlay": True}}, {"ingress", "dockercoins", "cache"}),
        ({"scope": {"swarm": True}}, {"ingress", "dockercoins", "cache"}),
        ({"name": {"dockercoins": True}}, {"dockercoins"}),
        ({"name": {"^ing": True}}, {"ingress"}),
        ({"label": {"tier=back": True}, "driver": {"overlay": True}}, {"cache"}),
        ({"type": {"builtin": True}, "scope": {"swarm": True}}, set()),
        (
            {"type": {"custom": True}, "driver": {"overlay": True}},
            {"ingress", "dockercoins", "cache"},
        ),
        ({"dangling": {"true": True}, "driver": {"overlay": True}}, {"ingress", "cache"}),
        ({"dangling": {"false": True}, "driver": {"overlay": True}}, {"dockercoins"}),
    ],
)
async def test_list_filters(client, store, engine, filters, names):
    await overlay(client)
    await overlay(client, "cache", Labels={"tier": "back"})
    network = network_named(store, "dockercoins")
    assert (await create_service(client, Networks=[{"Target": network.id}])).status == 201
    response = await client.get("/networks", params={"filters": json.dumps(filters)})
    assert response.status == 200, await response.text()
    listed = {n["Name"] for n in await response.json()}
    assert listed & {"ingress", "dockercoins", "cache"} == names
    if "scope" in filters or "driver" in filters:
        assert listed == names


async def test_list_refuses_bad_filters(client, engine):
    for filters in ({"colour": ["red"]}, {"type": ["odd"]}, {"dangling": ["maybe"]}):
        response = await client.get("/networks", params={"filters": json.dumps(filters)})
        assert response.status == 400


# Remove


async def test_a_network_in_use_by_a_service_cannot_be_removed(client, store):
    await overlay(client)
    assert (await create_service(client, Networks=[{"Target": "dockercoins"}])).status == 201
    revision = store.revision
    response = await client.delete("/networks/dockercoins")
    assert response.status == 400
    assert (await response.json())["message"] == "network dockercoins is in use by service web"
    assert store.revision == revision
    assert (await client.delete("/services/web")).status == 200
    response = await client.delete("/networks/dockercoins")
    assert response.status == 204
    assert store.by_name(Network, "dockercoins") is None


async def test_a_network_in_use_by_a_live_task_cannot_be_removed(client, store):
    await overlay(client)
    network = network_named(store, "dockercoins")
    web = store.get(Service, (await (await create_service(client)).json())["ID"])
    task = await add_task(store, web, await add_node(store, "worker"), state=TaskState.RUNNING)
    attached = task.replace(
        networks_attachments=[NetworkAttachment(network=network, addresses=["10.0.1.3/24"])]
    )
    await store.commit([Op.update(attached)])
    revision = store.revision
    response = await client.delete("/networks/dockercoins")
    assert response.status == 400
    assert "network dockercoins is in use by task web.1." in (await response.json())["message"]
    assert store.revision == revision
    current = store.get(Task, task.id)
    ended = current.replace(
        status=current.status.replace(state=TaskState.SHUTDOWN), desired_state=TaskState.SHUTDOWN
    )
    await store.commit([Op.update(ended)])
    assert (await client.delete("/networks/dockercoins")).status == 204


async def test_ingress_cannot_be_removed_while_a_service_publishes(client, store):
    ports = {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}
    response = await create_service(client, EndpointSpec=ports)
    assert response.status == 201
    web = store.get(Service, (await response.json())["ID"])
    revision = store.revision
    response = await client.delete("/networks/ingress")
    assert response.status == 400
    assert (await response.json())["message"] == (
        "ingress network cannot be removed because service web depends on it"
    )
    assert store.revision == revision
    # --publish-rm: then it may go, and a service publishing a port can no longer be made.
    spec = service_spec("web", EndpointSpec={"Ports": []})
    response = await client.post(
        f"/services/{web.id}/update?version={web.version.index}", json=spec
    )
    assert response.status == 200
    assert (await client.delete("/networks/ingress")).status == 204
    revision = store.revision
    response = await create_service(client, "api", EndpointSpec=ports)
    assert response.status == 400
    assert (await response.json())["message"] == NO_INGRESS
    assert store.revision == revision


# Services on networks


async def test_service_networks_are_resolved_to_ids_with_their_aliases(client, store):
    await overlay(client)
    await overlay(client, "cache")
    cache = network_named(store, "cache")
    networks = [
        {"Target": "dockercoins", "Aliases": ["hasher"]},
        {"Target": cache.id[:8]},
    ]
    response = await create_service(
        client, TaskTemplate={**service_spec("web")["TaskTemplate"], "Networks": networks}
    )
    assert response.status == 201, await response.text()
    web = store.get(Service, (await response.json())["ID"])
    configs = web.spec.task_template.networks or []
    assert [(c.target, c.aliases) for c in configs] == [
        (network_named(store, "dockercoins").id, ["hasher"]),
        (cache.id, None),
    ]


@pytest.mark.parametrize(
    ("target", "status", "message"),
    [
        ("nope", 404, "network nope not found"),
        ("ingress", 400, 'Service cannot be explicitly attached to the ingress network "ingress"'),
    ],
)
async def test_bad_service_networks_are_refused(client, store, target, status, message):
    revision = store.revision
    response = await create_service(client, Networks=[{"Target": target}])
    assert response.status == status
    assert (await response.json())["message"] == message
    assert store.revision == revision


async def test_a_network_named_twice_is_refused(client, store):
    await overlay(client)
    revision = store.revision
    twice = [{"Target": "dockercoins"}, {"Target": network_named(store, "dockercoins").id}]
    response = await create_service(client, Networks=twice)
    assert response.status == 400
    assert store.revision == revision


async def test_a_local_network_cannot_be_used_by_a_service(client, store, engine):
    revision = store.revision
    response = await create_service(client, Networks=[{"Target": "bridge"}])
    assert response.status == 400
    assert (await response.json())["message"].startswith(
        "The network bridge cannot be used with services."
    )
    assert store.revision == revision


async def test_network_add_on_update_resolves_the_new_target(client, store):
    await overlay(client)
    response = await create_service(client)
    web = store.get(Service, (await response.json())["ID"])
    spec = service_spec("web", Networks=[{"Target": "dockercoins"}])
    response = await client.post(
        f"/services/{web.id}/update?version={web.version.index}", json=spec
    )
    assert response.status == 200, await response.text()
    updated = store.get(Service, web.id)
    assert [c.target for c in updated.spec.networks or []] == [
        network_named(store, "dockercoins").id
    ]
    assert updated.spec_version.index == 2


async def test_dynamic_ports_are_given_at_create_and_kept_on_update(client, store):
    ports = {"Ports": [{"TargetPort": 80}, {"TargetPort": 81, "PublishedPort": 30001}]}
    web = store.get(
        Service, (await (await create_service(client, EndpointSpec=ports)).json())["ID"]
    )
    assert web.endpoint is not None
    assert [(p.target_port, p.published_port) for p in web.endpoint.ports or []] == [
        (80, 30000),
        (81, 30001),
    ]
    api = store.get(
        Service,
        (
            await (
                await create_service(client, "api", EndpointSpec={"Ports": [{"TargetPort": 80}]})
            ).json()
        )["ID"],
    )
    assert api.endpoint is not None
    assert [p.published_port for p in api.endpoint.ports or []] == [30002]
    # --publish-add 8080:90 on web: 80 keeps its number.
    more = {"Ports": [*ports["Ports"], {"TargetPort": 90, "PublishedPort": 8080}]}
    spec = service_spec("web", EndpointSpec=more)
    response = await client.post(
        f"/services/{web.id}/update?version={web.version.index}", json=spec
    )
    assert response.status == 200
    updated = store.get(Service, web.id)
    assert updated.endpoint is not None
    assert [p.published_port for p in updated.endpoint.ports or []] == [30000, 30001, 8080]


async def test_publish_add_of_a_port_in_use_is_refused_and_changes_nothing(client, store):
    taken = {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}
    assert (await create_service(client, "web", EndpointSpec=taken)).status == 201
    api = store.get(Service, (await (await create_service(client, "api")).json())["ID"])
    revision = store.revision
    spec = service_spec("api", EndpointSpec=taken)
    response = await client.post(
        f"/services/{api.id}/update?version={api.version.index}", json=spec
    )
    assert response.status == 400
    assert "port '8080' is already in use by service 'web'" in (await response.json())["message"]
    assert store.revision == revision


# The stock CLI


async def test_the_cli_creates_lists_inspects_and_removes_an_overlay_network(docker, served, store):
    code, out, err = await docker(served, "network", "create", "--driver", "overlay", "dockercoins")
    assert code == 0, err
    network = network_named(store, "dockercoins")
    assert out.strip() == network.id

    code, out, err = await docker(served, "network", "ls")
    assert code == 0, err
    rows = {line.split()[1]: line.split() for line in out.splitlines()[1:]}
    assert rows["dockercoins"][2:] == ["overlay", "swarm"]
    assert rows["ingress"][2:] == ["overlay", "swarm"]
    assert rows["dockercoins"][0] == network.id[:12]
    assert "bridge" in rows

    code, out, err = await docker(served, "network", "ls", "--filter", "driver=overlay", "-q")
    assert code == 0, err
    assert len(out.split()) == 2

    code, out, err = await docker(served, "network", "inspect", "dockercoins")
    assert code == 0, err
    [inspected] = json.loads(out)
    assert (inspected["Scope"], inspected["Driver"]) == ("swarm", "overlay")
    assert inspected["IPAM"]["Config"] == [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}]

    code, out, err = await docker(
        served, "service", "create", "-d", "--no-resolve-image", "--name", "web",
        "--network", "dockercoins", "-p", "8080:80", "swarmlet-test/busybox:latest",
    )  # fmt: skip
    assert code == 0, err
    revision = store.revision
    code, out, err = await docker(served, "network", "rm", "dockercoins")
    assert code != 0
    assert "network dockercoins is in use by service web" in err
    code, out, err = await docker(served, "network", "rm", "ingress", stdin=b"y\n")
    assert code != 0
    assert "ingress network cannot be removed because service web depends on it" in err
    assert store.revision == revision

    code, out, err = await docker(served, "service", "rm", "web")
    assert code == 0, err
    code, out, err = await docker(served, "network", "rm", "dockercoins")
    assert code == 0, err
    assert out.strip() == "dockercoins"
    assert store.by_name(Network, "dockercoins") is None

    code, out, err = await docker(
        served, "network", "create", "--driver", "overlay", "--subnet", "10.0.0.0/24", "clash"
    )
    assert code != 0
    assert "Pool overlaps with other one on this address space" in err


async def test_a_local_network_is_the_engines(docker, served, store):
    name = f"swarmlet-test-{os.getpid()}"
    revision = store.revision
    code, out, err = await docker(served, "network", "create", "--driver", "bridge", name)
    assert code == 0, err
    try:
        assert store.revision == revision
        code, out, err = await docker(served, "network", "inspect", name)
        assert code == 0, err
        [inspected] = json.loads(out)
        assert (inspected["Scope"], inspected["Driver"]) == ("local", "bridge")
        code, out, err = await docker(served, "network", "ls", "--filter", f"name={name}")
        assert name in out
    finally:
        code, out, err = await docker(served, "network", "rm", name)
    assert code == 0, err
    code, out, err = await docker(served, "network", "inspect", name)
    assert code != 0
