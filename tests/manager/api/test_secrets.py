"""/secrets and /configs: one implementation, so every endpoint is tested for both kinds."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from swarmlet.api.control import LocalNodeState
from swarmlet.ids import new_id
from swarmlet.manager.api.secrets import INVALID_NAME, ONLY_LABELS
from swarmlet.manager.store import Op, Store
from swarmlet.models import (
    Config,
    ConfigSpec,
    ContainerSpec,
    Secret,
    SecretReference,
    SecretSpec,
    Service,
    ServiceSpec,
    Version,
)
from tests.manager.api.fakes import service_spec


@dataclass(frozen=True)
class Kind:
    word: str
    model: type[Secret] | type[Config]
    path: str
    max_size: int
    references: str  # the ContainerSpec field that refers to this kind
    id_field: str


SECRET = Kind("secret", Secret, "/secrets", 500 * 1024, "Secrets", "SecretID")
CONFIG = Kind("config", Config, "/configs", 1000 * 1024, "Configs", "ConfigID")


@pytest.fixture(params=[SECRET, CONFIG], ids=["secret", "config"])
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spec(name: str, data: bytes | None = b"hunter2", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Name": name, "Labels": {}}
    if data is not None:
        body["Data"] = b64(data)
    body.update(extra)
    return body


async def add(
    store: Store,
    kind: Kind,
    name: str,
    data: bytes = b"hunter2",
    labels: dict[str, str] | None = None,
    object_id: str | None = None,
) -> Secret | Config:
    fields = {"name": name, "data": data, "labels": labels or {}}
    obj_id = object_id or new_id()
    if kind is SECRET:
        obj: Secret | Config = Secret(id=obj_id, spec=SecretSpec(**fields))
    else:
        obj = Config(id=obj_id, spec=ConfigSpec(**fields))
    return (await store.commit([Op.create(obj)]))[0]  # type: ignore[return-value]


async def add_service_using(store: Store, kind: Kind, name: str, obj: Secret | Config) -> Service:
    reference = {
        "File": {"Name": obj.spec.name, "UID": "0", "GID": "0", "Mode": 0o444},
        kind.id_field: obj.id,
        f"{kind.word.capitalize()}Name": obj.spec.name,
    }
    body = service_spec(name)
    body["TaskTemplate"]["ContainerSpec"][kind.references] = [reference]
    service = Service(id=new_id(), spec=ServiceSpec.from_api(body), spec_version=Version(index=1))
    return (await store.commit([Op.create(service)]))[0]  # type: ignore[return-value]


async def create(client: Any, kind: Kind, body: dict[str, Any]) -> Any:
    """POST /create, the body streamed: a config may be over a mebibyte of JSON."""
    data = io.BytesIO(json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    return await client.post(f"{kind.path}/create", data=data, headers=headers)


async def message(response: Any) -> str:
    return str((await response.json())["message"])


# Create


async def test_create_stores_the_data_and_answers_the_id(client, store, kind):
    body = spec("db_pass", b"hunter2\n", Labels={"tier": "db"})
    response = await client.post(f"/v1.47{kind.path}/create", json=body)
    assert response.status == 201
    answer = await response.json()
    assert list(answer) == ["ID"]
    stored = store.get(kind.model, answer["ID"])
    assert len(stored.id) == 25
    assert stored.spec.name == "db_pass"
    assert stored.spec.data == b"hunter2\n"
    assert stored.spec.labels == {"tier": "db"}
    assert stored.version.index == store.revision
    assert stored.created_at is not None


async def test_names_take_dots_dashes_and_underscores_up_to_64_characters(client, store, kind):
    for name in ("app.key_v-1", "a", "b" * 64):
        response = await client.post(f"{kind.path}/create", json=spec(name))
        assert response.status == 201, await message(response)


TOO_BIG = "{word} data must be larger than 0 and less than {max} bytes"
REFUSED_CREATES: dict[str, tuple[Any, str]] = {
    "no name": (lambda kind: {"Data": b64(b"x")}, "name must be provided"),
    "leading dash": (lambda kind: spec("-db"), INVALID_NAME),
    "trailing dash": (lambda kind: spec("db-"), INVALID_NAME),
    "space": (lambda kind: spec("db pass"), INVALID_NAME),
    "slash": (lambda kind: spec("db/pass"), INVALID_NAME),
    "65 characters": (lambda kind: spec("c" * 65), INVALID_NAME),
    "no data": (lambda kind: spec("db_pass", data=None), TOO_BIG),
    "empty data": (lambda kind: spec("db_pass", data=b""), TOO_BIG),
    "data at the limit": (lambda kind: spec("db_pass", b"x" * kind.max_size), TOO_BIG),
    "bad base64": (
        lambda kind: spec("db_pass", data=None, Data="not base64!"),
        "Data: Value error, illegal base64 data",
    ),
}


@pytest.mark.parametrize("case", REFUSED_CREATES.values(), ids=REFUSED_CREATES.keys())
async def test_create_refuses_with_swarms_words_and_changes_nothing(client, store, kind, case):
    body_of, expected = case
    revision = store.revision
    response = await create(client, kind, body_of(kind))
    assert response.status == 400
    assert expected.format(word=kind.word, max=kind.max_size) in await message(response)
    assert store.revision == revision


async def test_data_just_under_the_limit_is_accepted(client, store, kind):
    response = await create(client, kind, spec("big", b"x" * (kind.max_size - 1)))
    assert response.status == 201, await response.text()
    assert store.by_name(kind.model, "big").spec.data == b"x" * (kind.max_size - 1)


@pytest.mark.parametrize("driver", ["golang", "mustache"])
async def test_a_template_driver_is_kept_as_given_even_one_swarm_does_not_know(
    client, store, kind, driver
):
    # SwarmKit checks no template driver at create: golang is expanded per task on its node,
    # any other fails the task ("unrecognized template type", tests/agent/test_dependencies.py).
    body = spec("tpl", b"{{.Service.Name}}", Templating={"Name": driver})
    response = await create(client, kind, body)
    assert response.status == 201, await message(response)
    created = store.by_name(kind.model, "tpl")
    assert created.spec.templating is not None
    assert created.spec.templating.name == driver
    assert created.spec.data == b"{{.Service.Name}}"
    response = await client.get(f"{kind.path}/{created.id}")
    assert (await response.json())["Spec"]["Templating"]["Name"] == driver


async def test_an_update_changes_only_the_labels_even_with_a_template_driver(client, store, kind):
    obj = await add(store, kind, "db_pass", b"hunter2")
    body = spec("db_pass", Labels={"b": "2"}, Templating={"Name": "golang"})
    response = await client.post(f"{kind.path}/{obj.id}/update?version={store.revision}", json=body)
    assert response.status == 200, await message(response)
    updated = store.get(kind.model, obj.id)
    assert updated.spec.labels == {"b": "2"}
    assert updated.spec.templating is None


@pytest.mark.parametrize(
    ("driver", "expected"),
    [
        ({"Name": "vault"}, "secret driver 'vault' is not supported"),
        ({"Name": ""}, "secret driver must have a name"),
    ],
)
async def test_a_secret_driver_is_refused(client, store, driver, expected):
    response = await client.post("/secrets/create", json=spec("db_pass", Driver=driver))
    assert response.status == 400
    assert expected in await message(response)
    assert store.all(Secret) == []


async def test_a_duplicate_name_is_a_conflict(client, store, kind):
    await add(store, kind, "db_pass")
    revision = store.revision
    response = await client.post(f"{kind.path}/create", json=spec("db_pass", b"other"))
    assert response.status == 409
    assert await message(response) == f"{kind.word} db_pass already exists"
    assert store.revision == revision


async def test_a_body_that_is_not_an_object_is_refused(client, kind):
    response = await client.post(f"{kind.path}/create", data=b'["db_pass"]')
    assert response.status == 400


# What is shown


async def test_a_secrets_data_is_never_shown(client, store):
    response = await client.post("/secrets/create", json=spec("db_pass", b"hunter2"))
    secret_id = (await response.json())["ID"]
    answers = [
        await client.get(f"/v1.47/secrets/{secret_id}"),
        await client.get("/v1.47/secrets/db_pass"),
        await client.get("/v1.47/secrets"),
        await client.get("/secrets?filters=" + json.dumps({"names": ["db_pass"]})),
    ]
    for answer in answers:
        assert answer.status == 200
        text = await answer.text()
        assert b64(b"hunter2") not in text
        assert "Data" not in text
    assert store.get(Secret, secret_id).spec.data == b"hunter2"


async def test_a_configs_data_is_shown(client, store):
    await add(store, CONFIG, "app.conf", b"listen 80;\n")
    (listed,) = await (await client.get("/configs")).json()
    inspected = await (await client.get("/configs/app.conf")).json()
    assert listed == inspected
    assert base64.b64decode(inspected["Spec"]["Data"]) == b"listen 80;\n"


async def test_inspect_by_id_name_and_unique_prefix(client, store, kind):
    obj = await add(store, kind, "db_pass", labels={"tier": "db"})
    for ref in (obj.id, "db_pass", obj.id[:6]):
        response = await client.get(f"{kind.path}/{ref}")
        assert response.status == 200
        shown = await response.json()
        assert shown["ID"] == obj.id
    assert set(shown) == {"ID", "Version", "CreatedAt", "UpdatedAt", "Spec"}
    assert shown["Version"] == {"Index": obj.version.index}
    assert shown["Spec"]["Name"] == "db_pass"
    assert shown["Spec"]["Labels"] == {"tier": "db"}


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", "/update?version=1")]
)
async def test_an_unknown_reference_is_404(client, store, kind, method, suffix):
    response = await client.request(method, f"{kind.path}/nope{suffix}", json={"Name": "nope"})
    assert response.status == 404
    assert await message(response) == f"{kind.word} nope not found"


async def test_an_ambiguous_prefix_is_a_bad_request(client, store, kind):
    await add(store, kind, "one", object_id="abc" + "1" * 22)
    await add(store, kind, "two", object_id="abc" + "2" * 22)
    response = await client.get(f"{kind.path}/abc")
    assert response.status == 400
    assert await message(response) == f"{kind.word} abc is ambiguous (2 matches found)"


async def test_a_node_that_is_not_a_manager_answers_503(client, control, kind):
    control.state = LocalNodeState.INACTIVE
    control.store = None
    response = await client.get(kind.path)
    assert response.status == 503
    assert "not a swarm manager" in await message(response)


# List and its filters


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({}, ["db_pass", "db_user", "web_cert"]),
        ({"name": ["db"]}, ["db_pass", "db_user"]),
        ({"name": {"db_pass": True}}, ["db_pass"]),
        ({"names": ["db"]}, []),
        ({"names": ["db_user", "web_cert"]}, ["db_user", "web_cert"]),
        ({"id": ["ccc"]}, ["web_cert"]),
        # Names and IDs are alternatives, as in SwarmKit: either matches.
        ({"name": ["db_pass"], "id": ["ccc"]}, ["db_pass", "web_cert"]),
        ({"label": ["tier"]}, ["db_pass", "db_user"]),
        ({"label": ["tier=db", "env=prod"]}, ["db_user"]),
        ({"name": ["db"], "label": ["env"]}, ["db_user"]),
    ],
)
async def test_list_filters(client, store, kind, filters, names):
    await add(store, kind, "db_pass", labels={"tier": "db"}, object_id="a" * 25)
    await add(store, kind, "db_user", labels={"tier": "db", "env": "prod"}, object_id="b" * 25)
    await add(store, kind, "web_cert", object_id="c" * 25)
    response = await client.get(kind.path, params={"filters": json.dumps(filters)})
    assert response.status == 200
    assert [shown["Spec"]["Name"] for shown in await response.json()] == names


async def test_list_refuses_an_unknown_filter(client, kind):
    response = await client.get(kind.path, params={"filters": json.dumps({"driver": ["x"]})})
    assert response.status == 400
    assert await message(response) == "invalid filter 'driver'"


# Update


async def test_update_changes_only_the_labels(client, store, kind):
    obj = await add(store, kind, "db_pass", b"hunter2", labels={"a": "1"})
    body = {"Name": "db_pass", "Labels": {"b": "2"}}
    response = await client.post(
        f"{kind.path}/db_pass/update?version={obj.version.index}", json=body
    )
    assert response.status == 200
    updated = store.get(kind.model, obj.id)
    assert updated.spec.labels == {"b": "2"}
    assert updated.spec.data == b"hunter2"
    assert updated.version.index == store.revision > obj.version.index
    # The same data may be sent back (as `docker stack deploy` does).
    body = spec("db_pass", b"hunter2", Labels={"c": "3"})
    response = await client.post(f"{kind.path}/{obj.id}/update?version={store.revision}", json=body)
    assert response.status == 200
    assert store.get(kind.model, obj.id).spec.labels == {"c": "3"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (spec("renamed"), ONLY_LABELS),
        (spec("db_pass", b"changed"), ONLY_LABELS),
    ],
)
async def test_update_refuses_any_other_change(client, store, kind, body, expected):
    obj = await add(store, kind, "db_pass", b"hunter2")
    revision = store.revision
    response = await client.post(f"{kind.path}/{obj.id}/update?version={revision}", json=body)
    assert response.status == 400
    assert expected in await message(response)
    assert store.revision == revision


async def test_update_with_a_stale_version_changes_nothing(client, store, kind):
    obj = await add(store, kind, "db_pass")
    await add(store, kind, "other")
    body = {"Name": "db_pass", "Labels": {"b": "2"}}
    response = await client.post(f"{kind.path}/{obj.id}/update?version=99", json=body)
    assert response.status == 409
    response = await client.post(f"{kind.path}/{obj.id}/update", json=body)
    assert response.status == 400
    assert store.get(kind.model, obj.id) == obj


# Remove


async def test_remove_by_name(client, store, kind):
    obj = await add(store, kind, "db_pass")
    response = await client.delete(f"/v1.47{kind.path}/db_pass")
    assert response.status == 204
    assert store.find(kind.model, obj.id) is None


async def test_an_object_in_use_cannot_be_removed(client, store, kind):
    obj = await add(store, kind, "db_pass")
    web = await add_service_using(store, kind, "web", obj)
    revision = store.revision
    response = await client.delete(f"{kind.path}/db_pass")
    assert response.status == 400
    expected = f"{kind.word} 'db_pass' is in use by the following service: web"
    assert await message(response) == expected
    assert store.revision == revision

    api = await add_service_using(store, kind, "api", obj)
    response = await client.delete(f"{kind.path}/{obj.id}")
    assert response.status == 400
    by_id = ", ".join(s.spec.name for s in sorted([web, api], key=lambda s: s.id))
    assert await message(response) == (
        f"{kind.word} 'db_pass' is in use by the following services: {by_id}"
    )

    await store.commit([Op.delete(web), Op.delete(api)])
    assert (await client.delete(f"{kind.path}/db_pass")).status == 204
    assert store.find(kind.model, obj.id) is None


# The models


def test_a_secret_round_trips_with_its_data_in_base64():
    wire = {
        "ID": "s" * 25,
        "Version": {"Index": 3},
        "Spec": {"Name": "db_pass", "Labels": {"a": "b"}, "Data": b64(b"\x00\xffbin")},
    }
    secret = Secret.from_api(wire)
    assert secret.spec.data == b"\x00\xffbin"
    assert secret.to_api() == wire
    assert Secret.from_api(secret.to_api()) == secret
    assert "Data" not in secret.redacted().to_api()["Spec"]
    assert secret.spec.data == b"\x00\xffbin"  # redacted() made a copy


def test_references_round_trip_in_the_engine_apis_shape():
    wire = {
        "Image": "busybox",
        "Labels": {},
        "Secrets": [
            {
                "File": {"Name": "x", "UID": "1000", "GID": "1000", "Mode": 0o400},
                "SecretID": "s" * 25,
                "SecretName": "db_pass",
            }
        ],
        "Configs": [
            {"Runtime": {}, "ConfigID": "c" * 25, "ConfigName": "cred"},
            {"File": {"Name": "/etc/app.conf"}, "ConfigID": "d" * 25, "ConfigName": "app"},
        ],
    }
    container = ContainerSpec.from_api(wire)
    assert container.secrets == [
        SecretReference.from_api(wire["Secrets"][0])  # type: ignore[index]
    ]
    assert container.secrets[0].file is not None
    assert container.secrets[0].file.uid == "1000"
    assert container.configs is not None
    assert container.configs[0].runtime is not None
    shown = container.to_api()
    assert shown["Secrets"] == wire["Secrets"]
    assert shown["Configs"][0] == wire["Configs"][0]  # type: ignore[index]
    assert shown["Configs"][1]["File"] == {"Name": "/etc/app.conf", "UID": "", "GID": "", "Mode": 0}
