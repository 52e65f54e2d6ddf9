"""The API reads and writes JSON as Docker's Go code does (docs/api.md, "How JSON is read and
written"): keys in any case, what Go's ``omitempty`` omits left out, every spec returned as it
was given, and ``insertDefaults``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from swarmlet.manager.store import Op
from swarmlet.models import SECOND_NS, Network, NetworkAttachment, Service
from tests.manager.api.fakes import add_task, service_spec

IMAGE = "swarmlet-test/busybox:latest"
FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "swarm-20.10"


async def create_network(client, name: str) -> str:
    response = await client.post("/v1.47/networks/create", json={"Name": name, "Driver": "overlay"})
    assert response.status == 201, await response.text()
    return str((await response.json())["Id"])


async def create_secret(client, kind: str, name: str) -> str:
    response = await client.post(f"/v1.47/{kind}/create", json={"Name": name, "Data": "aGk="})
    assert response.status == 201, await response.text()
    return str((await response.json())["ID"])


async def create(client, spec: dict[str, Any]) -> str:
    response = await client.post("/v1.47/services/create", json=spec)
    assert response.status == 201, await response.text()
    body = await response.json()
    return str(body["ID"])


async def inspect(client, service_id: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/v1.47/services/{service_id}{query}")
    assert response.status == 200, await response.text()
    return await response.json()  # type: ignore[no-any-return]


def lower_keys(value: Any) -> Any:
    """The JSON with every object key (but a map's) in lower camel case, as docker-py and
    hand-written clients send them."""
    if isinstance(value, list):
        return [lower_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        maps = key in ("Labels", "Options", "Sysctls", "Spread")
        result[key[:1].lower() + key[1:]] = item if maps else lower_keys(item)
    return result


def full_spec(network_id: str, secret_id: str, config_id: str) -> dict[str, Any]:
    """A ServiceSpec with every field swarmlet declares set to something other than empty."""
    update = {
        "Parallelism": 2,
        "Delay": 3 * SECOND_NS,
        "FailureAction": "rollback",
        "Monitor": 7 * SECOND_NS,
        "MaxFailureRatio": 0.5,
        "Order": "start-first",
    }
    return {
        "Name": "full",
        "Labels": {"tier": "web"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": IMAGE,
                "Labels": {"c": "d"},
                "Command": ["/bin/sh"],
                "Args": ["-c", "sleep 100"],
                "Hostname": "host-{{.Task.Slot}}",
                "Env": ["A=1", "B=2"],
                "Dir": "/tmp",
                "User": "nobody",
                "Groups": ["daemon"],
                "Init": True,
                "StopSignal": "SIGUSR1",
                "TTY": True,
                "OpenStdin": True,
                "ReadOnly": True,
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "data",
                        "Target": "/data",
                        "ReadOnly": True,
                        "VolumeOptions": {
                            "NoCopy": True,
                            "Labels": {"x": "y"},
                            "DriverConfig": {"Name": "local", "Options": {"o": "p"}},
                        },
                    },
                    {
                        "Type": "bind",
                        "Source": "/tmp",
                        "Target": "/host",
                        "Consistency": "cached",
                        "BindOptions": {"Propagation": "rslave", "NonRecursive": True},
                    },
                    {
                        "Type": "tmpfs",
                        "Target": "/scratch",
                        "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o700},
                    },
                ],
                "StopGracePeriod": 20 * SECOND_NS,
                "Healthcheck": {
                    "Test": ["CMD", "true"],
                    "Interval": 2 * SECOND_NS,
                    "Timeout": SECOND_NS,
                    "Retries": 3,
                    "StartPeriod": 4 * SECOND_NS,
                    "StartInterval": SECOND_NS,
                },
                "Hosts": ["10.9.9.9 db"],
                "DNSConfig": {
                    "Nameservers": ["10.9.9.1"],
                    "Search": ["ex"],
                    "Options": ["ndots:2"],
                },
                "Secrets": [
                    {
                        "File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 0o400},
                        "SecretID": secret_id,
                        "SecretName": "pw",
                    }
                ],
                "Configs": [
                    {
                        "File": {"Name": "/conf", "UID": "0", "GID": "0", "Mode": 0o444},
                        "ConfigID": config_id,
                        "ConfigName": "conf",
                    }
                ],
                "Isolation": "default",
                "Sysctls": {"net.ipv4.ip_forward": "1"},
                "CapabilityAdd": ["CAP_NET_ADMIN"],
                "CapabilityDrop": ["CAP_MKNOD"],
                "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                "OomScoreAdj": 100,
            },
            "Resources": {
                "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20, "Pids": 64},
                "Reservations": {
                    "NanoCPUs": 100_000_000,
                    "MemoryBytes": 32 << 20,
                    "GenericResources": [{"DiscreteResourceSpec": {"Kind": "sgx", "Value": 1}}],
                },
                "SwapBytes": 128 << 20,
                "MemorySwappiness": 10,
            },
            "RestartPolicy": {
                "Condition": "on-failure",
                "Delay": 2 * SECOND_NS,
                "MaxAttempts": 3,
                "Window": 60 * SECOND_NS,
            },
            "Placement": {
                "Constraints": ["node.role==manager"],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                "MaxReplicas": 2,
            },
            "Networks": [{"Target": network_id, "Aliases": ["front"]}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "1m"}},
            "ForceUpdate": 1,
            "Runtime": "container",
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": update,
        "RollbackConfig": dict(update),
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [
                {
                    "Name": "http",
                    "Protocol": "tcp",
                    "TargetPort": 80,
                    "PublishedPort": 8080,
                    "PublishMode": "ingress",
                }
            ],
        },
    }


@pytest.fixture
async def full(client) -> dict[str, Any]:
    network_id = await create_network(client, "front")
    secret_id = await create_secret(client, "secrets", "pw")
    config_id = await create_secret(client, "configs", "conf")
    return full_spec(network_id, secret_id, config_id)


async def test_a_spec_of_every_field_comes_back_as_given(client, full):
    service_id = await create(client, full)
    assert (await inspect(client, service_id))["Spec"] == full
    # Nothing to insert: every field that has a default is set.
    assert (await inspect(client, service_id, "?insertDefaults=true"))["Spec"] == full


async def test_a_spec_sent_in_lower_case_comes_back_in_gos_names(client, full):
    service_id = await create(client, lower_keys(full))
    assert (await inspect(client, service_id))["Spec"] == full


async def test_keys_in_any_case_are_the_fields(client, store):
    """docker-py's `{"global": {}}`: a global service, not an unknown mode."""
    spec = {
        "name": "web",
        "taskTemplate": {"containerSpec": {"image": IMAGE}},
        "mode": {"GLOBAL": {}},
    }
    service_id = await create(client, spec)
    service = store.get(Service, service_id)
    assert service.is_global
    assert service.spec.task_template.container_spec.image == IMAGE


async def test_the_last_of_two_keys_for_one_field_wins(client, store):
    spec = service_spec("web", Mode={"Replicated": {"Replicas": 3, "replicas": 2}})
    service_id = await create(client, spec)
    assert store.get(Service, service_id).replicas == 2


async def test_unknown_keys_are_kept_as_they_came(client):
    spec = service_spec("web")
    spec["TaskTemplate"]["ContainerSpec"]["Privileges"] = {"NoNewPrivileges": True}
    service_id = await create(client, spec)
    shown = (await inspect(client, service_id))["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert shown["Privileges"] == {"NoNewPrivileges": True}


# What the stock CLI sends for `docker service create IMAGE` at API 1.41: every optional
# struct empty, as the CLI leaves it.
CLI_SPEC: dict[str, Any] = {
    "Name": "plain",
    "Labels": {},
    "TaskTemplate": {
        "ContainerSpec": {"Image": IMAGE, "Init": False, "DNSConfig": {}, "Isolation": "default"},
        "Resources": {"Limits": {}, "Reservations": {}},
        "Placement": {},
        "ForceUpdate": 0,
        "Runtime": "container",
    },
    "Mode": {"Replicated": {"Replicas": 1}},
    "EndpointSpec": {"Mode": "vip"},
}


async def test_a_spec_of_empty_optional_fields_comes_back_as_given(client):
    service_id = await create(client, CLI_SPEC)
    assert (await inspect(client, service_id))["Spec"] == CLI_SPEC


async def test_empty_values_are_left_out_as_go_leaves_them_out(client):
    """Go's zero values sent for omitempty fields come back without them, as from Swarm."""
    spec = copy.deepcopy(CLI_SPEC)
    container = spec["TaskTemplate"]["ContainerSpec"]
    container.update(
        {"Labels": {}, "Env": [], "Hostname": "", "TTY": False, "Mounts": [], "Hosts": None}
    )
    spec["TaskTemplate"]["Placement"] = {"Constraints": [], "Preferences": [], "MaxReplicas": 0}
    spec["TaskTemplate"]["Networks"] = []
    spec["TaskTemplate"]["Resources"]["Limits"] = {"NanoCPUs": 0, "MemoryBytes": 0, "Pids": 0}
    spec["EndpointSpec"]["Ports"] = []
    spec["UpdateConfig"] = {
        "Parallelism": 0,
        "Delay": 0,
        "FailureAction": "",
        "Monitor": 0,
        "MaxFailureRatio": 0,
        "Order": "",
    }
    spec["TaskTemplate"]["RestartPolicy"] = {"Condition": "", "MaxAttempts": 0}
    service_id = await create(client, spec)
    expected = copy.deepcopy(CLI_SPEC)
    expected["UpdateConfig"] = {
        "Parallelism": 0,
        "FailureAction": "pause",
        "MaxFailureRatio": 0,
        "Order": "stop-first",
    }
    expected["TaskTemplate"]["RestartPolicy"] = {"Condition": "any", "MaxAttempts": 0}
    assert (await inspect(client, service_id))["Spec"] == expected


async def test_insert_defaults_fills_what_swarmkit_fills(client):
    service_id = await create(client, CLI_SPEC)
    spec = (await inspect(client, service_id, "?insertDefaults=true"))["Spec"]
    update = {
        "Parallelism": 1,
        "FailureAction": "pause",
        "Monitor": 5 * SECOND_NS,
        "MaxFailureRatio": 0,
        "Order": "stop-first",
    }
    template = spec["TaskTemplate"]
    assert template["ContainerSpec"]["StopGracePeriod"] == 10 * SECOND_NS
    assert template["ContainerSpec"]["DNSConfig"] == {}
    assert template["RestartPolicy"] == {
        "Condition": "any",
        "Delay": 5 * SECOND_NS,
        "MaxAttempts": 0,
    }
    assert template["Placement"] == {}
    assert spec["UpdateConfig"] == update
    assert spec["RollbackConfig"] == update
    # Without it, or with a false value, nothing is inserted.
    for query in ("", "?insertDefaults=false", "?insertDefaults=0"):
        assert (await inspect(client, service_id, query))["Spec"] == CLI_SPEC


async def test_insert_defaults_keeps_what_is_set(client):
    spec = copy.deepcopy(CLI_SPEC)
    spec["UpdateConfig"] = {"Parallelism": 3, "MaxFailureRatio": 0, "Order": "start-first"}
    spec["TaskTemplate"]["RestartPolicy"] = {"Condition": "none", "MaxAttempts": 2}
    service_id = await create(client, spec)
    shown = (await inspect(client, service_id, "?insertDefaults=1"))["Spec"]
    assert shown["UpdateConfig"] == {
        "Parallelism": 3,
        "FailureAction": "pause",
        "Monitor": 5 * SECOND_NS,
        "MaxFailureRatio": 0,
        "Order": "start-first",
    }
    restart = {"Condition": "none", "Delay": 5 * SECOND_NS, "MaxAttempts": 2}
    assert shown["TaskTemplate"]["RestartPolicy"] == restart


async def test_a_bad_insert_defaults_is_refused(client):
    service_id = await create(client, CLI_SPEC)
    response = await client.get(f"/v1.47/services/{service_id}?insertDefaults=yes")
    assert response.status == 400
    message = (await response.json())["message"]
    assert message.startswith("invalid value for insertDefaults: yes"), message


async def test_a_service_shows_no_field_of_swarmlets_own(client):
    service_id = await create(client, CLI_SPEC)
    assert "SpecVersion" not in await inspect(client, service_id)
    response = await client.get("/v1.47/services")
    assert all("SpecVersion" not in shown for shown in await response.json())


async def test_a_list_shows_each_object_as_its_inspect_does(client, full):
    """Lists are written by pydantic straight from the models: the same JSON as inspect's."""
    plain = await create(client, CLI_SPEC)  # no port, no network: an endpoint not allocated
    published = await create(client, full)
    response = await client.get("/v1.47/services")
    listed = {shown["ID"]: shown for shown in await response.json()}
    for service_id in (plain, published):
        assert listed[service_id] == await inspect(client, service_id)
    assert listed[plain]["Endpoint"] == {"Spec": {}}


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Keys and nesting, not values (a map's keys as `*`)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            if key in ("Labels", "Options") and isinstance(item, dict):
                continue
            found |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= key_paths(item, f"{prefix}[]")
    return found


async def test_a_tasks_attachments_are_swarms_network_objects(client, store):
    """As Swarm 20.10 shows them (tests/fixtures/swarm-20.10/task.json): the swarm Network
    object (Spec, DriverState, IPAMOptions) and the addresses; no field of swarmlet's own."""
    network_id = await create_network(client, "front")
    spec = service_spec(
        "web", TaskTemplate={**CLI_SPEC["TaskTemplate"], "Networks": [{"Target": network_id}]}
    )
    spec["EndpointSpec"]["Ports"] = [{"TargetPort": 80, "PublishedPort": 8080}]
    service = store.get(Service, await create(client, spec))
    networks = sorted(store.all(Network), key=lambda n: not n.ingress)
    attachments = [
        NetworkAttachment(network=network, addresses=[f"10.0.{i}.5/24"], aliases=["web"])
        for i, network in enumerate(networks)
    ]
    task = await add_task(store, service, None)
    await store.commit([Op.update(task.replace(networks_attachments=attachments))])
    response = await client.get(f"/v1.47/tasks/{task.id}")
    shown = await response.json()
    recorded = json.loads((FIXTURES / "task.json").read_text())[0]
    for index in (0, 1):  # the ingress network, then an overlay one
        assert key_paths(shown["NetworksAttachments"][index]) == key_paths(
            recorded["NetworksAttachments"][index]
        )
    for own in ("Name", "ServiceName", "EndpointSpec", "SpecVersion", "RestartHistory"):
        assert own not in shown
    assert "Runtime" not in shown["Spec"]
    listed = await (await client.get("/v1.47/tasks")).json()
    assert [t for t in listed if t["ID"] == task.id] == [shown]
