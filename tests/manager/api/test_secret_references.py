"""A service's references to secrets and configs: checked with SwarmKit's words, kept as sent,
and a change of them is a new spec for the tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from swarmlet.manager.orchestrator import Now, reconcile_replicated
from swarmlet.manager.store import Op, Store
from swarmlet.models import (
    Config,
    ConfigSpec,
    Secret,
    SecretReference,
    SecretSpec,
    Service,
    TaskState,
)
from tests.manager.api.fakes import add_node, add_task, service_spec


async def add_secret(store: Store, name: str, object_id: str) -> Secret:
    secret = Secret(id=object_id, spec=SecretSpec(name=name, data=b"x"))
    return (await store.commit([Op.create(secret)]))[0]  # type: ignore[return-value]


async def add_config(store: Store, name: str, object_id: str) -> Config:
    config = Config(id=object_id, spec=ConfigSpec(name=name, data=b"x"))
    return (await store.commit([Op.create(config)]))[0]  # type: ignore[return-value]


DB_PASS, API_KEY = "s1" * 12 + "s", "s2" * 12 + "s"
APP_CONF, CRED = "c1" * 12 + "c", "c2" * 12 + "c"


@pytest.fixture
async def objects(store: Store) -> None:
    """Two secrets and two configs, with IDs the cases below can name."""
    await add_secret(store, "db_pass", DB_PASS)
    await add_secret(store, "api_key", API_KEY)
    await add_config(store, "app_conf", APP_CONF)
    await add_config(store, "cred", CRED)


def file(name: str, uid: str = "0", gid: str = "0", mode: int = 0o444) -> dict[str, Any]:
    return {"Name": name, "UID": uid, "GID": gid, "Mode": mode}


def secret_ref(secret_id: str, name: str, target: str | None = None) -> dict[str, Any]:
    return {"File": file(target or name), "SecretID": secret_id, "SecretName": name}


def config_ref(config_id: str, name: str, target: str | None = None) -> dict[str, Any]:
    return {"File": file(target or name), "ConfigID": config_id, "ConfigName": name}


def spec_with(
    name: str,
    secrets: list[dict[str, Any]] | None = None,
    configs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body = service_spec(name)
    container = body["TaskTemplate"]["ContainerSpec"]
    if secrets is not None:
        container["Secrets"] = secrets
    if configs is not None:
        container["Configs"] = configs
    return body


async def message(response: Any) -> str:
    return str((await response.json())["message"])


async def test_a_service_keeps_its_references_as_sent(client, store, objects):
    secrets = [
        secret_ref(DB_PASS, "db_pass"),
        {"File": file("x", "1000", "1000", 0o400), "SecretID": DB_PASS, "SecretName": "db_pass"},
    ]
    configs = [
        config_ref(APP_CONF, "app_conf", "/etc/app.conf"),
        {"Runtime": {}, "ConfigID": CRED, "ConfigName": "cred"},
    ]
    response = await client.post("/services/create", json=spec_with("web", secrets, configs))
    assert response.status == 201, await message(response)
    service = store.get(Service, (await response.json())["ID"])
    container = service.spec.task_template.container_spec
    assert container.secrets == [SecretReference.from_api(ref) for ref in secrets]
    assert container.secrets[1].file is not None
    assert (container.secrets[1].file.uid, container.secrets[1].file.mode) == ("1000", 0o400)
    assert container.configs is not None
    assert container.configs[1].runtime is not None
    shown = await (await client.get("/services/web")).json()
    assert shown["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"] == secrets
    assert shown["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"] == configs


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "unknown secret": (
        spec_with("web", [secret_ref("nope", "db_pass")]),
        "secret not found: db_pass",
    ),
    "a secret's ID under another name": (
        spec_with("web", [secret_ref(DB_PASS, "api_key")]),
        "secret not found: api_key",
    ),
    "two unknown secrets": (
        spec_with(
            "web", [secret_ref("x", "a"), secret_ref(API_KEY, "api_key"), secret_ref("y", "b")]
        ),
        "secrets not found: a, b",
    ),
    "unknown config": (
        spec_with("web", configs=[config_ref("nope", "app_conf")]),
        "config not found: app_conf",
    ),
    "no secret ID": (
        spec_with("web", [{"File": file("a"), "SecretName": "db_pass"}]),
        "malformed secret reference",
    ),
    "no secret name": (
        spec_with("web", [{"File": file("a"), "SecretID": DB_PASS}]),
        "malformed secret reference",
    ),
    "no target": (
        spec_with("web", [{"SecretID": DB_PASS, "SecretName": "db_pass"}]),
        "malformed secret reference, no target provided",
    ),
    "no file name": (
        spec_with("web", [secret_ref(DB_PASS, "db_pass") | {"File": {"UID": "0"}}]),
        "malformed file secret reference, invalid target file name provided",
    ),
    "one target twice": (
        spec_with(
            "web", [secret_ref(DB_PASS, "db_pass", "x"), secret_ref(API_KEY, "api_key", "x")]
        ),
        "secret references 'db_pass' and 'api_key' have a conflicting target: 'x'",
    ),
    "one config target twice": (
        spec_with(
            "web", configs=[config_ref(APP_CONF, "app_conf", "/c"), config_ref(CRED, "cred", "/c")]
        ),
        "config references 'app_conf' and 'cred' have a conflicting target: '/c'",
    ),
    "no config file name": (
        spec_with("web", configs=[config_ref(APP_CONF, "app_conf") | {"File": {}}]),
        "malformed file config reference, invalid target file name provided",
    ),
    "a config with no target": (
        spec_with("web", configs=[{"ConfigID": APP_CONF, "ConfigName": "app_conf"}]),
        "invalid Config: either File or Runtime should be set",
    ),
    "a config with two targets": (
        spec_with("web", configs=[config_ref(APP_CONF, "app_conf") | {"Runtime": {}}]),
        "invalid Config: cannot specify both File and Runtime",
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
async def test_bad_references_are_refused_and_change_nothing(client, store, objects, case):
    spec, expected = case
    revision = store.revision
    response = await client.post("/services/create", json=spec)
    assert response.status == 400
    assert await message(response) == expected
    assert store.revision == revision


async def test_one_secret_may_be_mounted_twice_under_two_names(client, store, objects):
    secrets = [secret_ref(DB_PASS, "db_pass", "a"), secret_ref(DB_PASS, "db_pass", "b")]
    response = await client.post("/services/create", json=spec_with("web", secrets))
    assert response.status == 201


async def test_update_checks_the_references_too(client, store, objects):
    response = await client.post("/services/create", json=spec_with("web"))
    service = store.get(Service, (await response.json())["ID"])
    response = await client.post(
        f"/services/web/update?version={service.version.index}",
        json=spec_with("web", [secret_ref("gone", "db_pass")]),
    )
    assert response.status == 400
    assert await message(response) == "secret not found: db_pass"
    assert store.get(Service, service.id) == service


async def test_adding_a_secret_replaces_the_tasks_and_removing_it_frees_the_secret(
    client, store, objects
):
    node = await add_node(store, "worker-1")
    response = await client.post("/services/create", json=spec_with("web"))
    service = store.get(Service, (await response.json())["ID"])
    task = await add_task(store, service, node)

    # --secret-add: the CLI sends the whole spec with the new reference.
    added = spec_with("web", [secret_ref(DB_PASS, "db_pass")])
    response = await client.post(
        f"/services/web/update?version={service.version.index}", json=added
    )
    assert response.status == 200, await message(response)
    service = store.get(Service, service.id)
    assert service.spec_version.index == 2

    now = Now(datetime(2026, 1, 1, tzinfo=UTC), 0.0)
    plan = reconcile_replicated(service, [task], {node.id: node}, now)
    [new] = plan.created
    assert new.spec == service.spec.task_template
    assert new.spec.container_spec.secrets == [
        SecretReference.from_api(secret_ref(DB_PASS, "db_pass"))
    ]
    [stopped] = plan.updated
    assert (stopped.id, stopped.desired_state) == (task.id, TaskState.SHUTDOWN)

    assert (await client.delete("/secrets/db_pass")).status == 400
    # --secret-rm: the spec without it; then the secret may go.
    response = await client.post(
        f"/services/web/update?version={service.version.index}", json=spec_with("web", [])
    )
    assert response.status == 200
    assert store.get(Service, service.id).spec_version.index == 3
    assert (await client.delete("/secrets/db_pass")).status == 204
