"""/secrets and /configs: Swarm's two kinds of named data, served by one implementation.

The two differ only in their word, their size limit, how a service refers to them and what
is shown: a secret's data never leaves the store through the API, a config's does. Each
``Kind`` carries those differences and serves the five endpoints of its path:

- ``GET /secrets`` with the filters `id` and `name` (prefixes), `names` (exact) and `label`;
  as in SwarmKit, an object matches any of the first three (they are alternatives) and every
  label expression.
- ``POST /secrets/create`` (201, ``{"ID"}``), ``GET /secrets/{id}``, ``DELETE /secrets/{id}``
  (204), ``POST /secrets/{id}/update?version=N`` (only the labels may change).

A reference is resolved as daemon/cluster's getSecret/getConfig: full ID, name, unique ID
prefix. The messages are SwarmKit's (manager/controlapi/secret.go, config.go, common.go).
A ``Templating`` driver is kept as given, as SwarmKit keeps it; the agents expand ``golang``
templates (docs/templates.md).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from swarmlet.api.common import json_response, read_json_object, version_query
from swarmlet.errors import InvalidSpec, NameConflict
from swarmlet.ids import new_id
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.filters import Filters, match_labels
from swarmlet.manager.api.lookup import resolve
from swarmlet.manager.api.reads import Reads
from swarmlet.manager.store import Tx
from swarmlet.models import (
    Config,
    ConfigSpec,
    ContainerSpec,
    Model,
    Secret,
    SecretSpec,
    Service,
    Version,
)

ACCEPTED_FILTERS = ("id", "label", "name", "names")
# SwarmKit's limits (api/validation MaxSecretSize, controlapi MaxConfigSize): data must be
# shorter than these.
MAX_SECRET_SIZE = 500 * 1024
MAX_CONFIG_SIZE = 1000 * 1024
MAX_NAME_LENGTH = 64
# Configs and secrets are named more freely than services (SwarmKit's isValidConfigOrSecretName).
_NAME = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?")
INVALID_NAME = (
    "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character"
    " must be [a-zA-Z0-9]"
)
ONLY_LABELS = "only updates to Labels are allowed"

P = TypeVar("P", Secret, Config)


def validate_name(name: str) -> None:
    """SwarmKit's validateConfigOrSecretAnnotations."""
    if not name:
        raise InvalidSpec("name must be provided")
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise InvalidSpec(INVALID_NAME)


def refuse_unsupported(word: str, spec: SecretSpec | ConfigSpec) -> None:
    """A secret driver (an external store, a plugin) is not implemented: refused rather than
    stored and ignored. A template driver is not checked, as in SwarmKit: ``golang`` is
    expanded per task on its node (docs/templates.md); any other fails the task that uses it
    with SwarmKit's ``unrecognized template type``."""
    driver = spec.driver if isinstance(spec, SecretSpec) else None
    if driver is not None:
        if not driver.name:
            raise InvalidSpec("secret driver must have a name")
        raise InvalidSpec(
            f"secret driver {driver.name!r} is not supported: swarmlet keeps a secret's data in"
            " its own store (leave Driver empty and send Data)"
        )


def validate_data(word: str, data: bytes | None, max_size: int) -> None:
    if not 0 < len(data or b"") < max_size:
        raise InvalidSpec(f"{word} data must be larger than 0 and less than {max_size} bytes")


def matches(obj: Secret | Config, filters: Filters) -> bool:
    names, name_prefixes, id_prefixes = filters.get("names"), filters.get("name"), filters.get("id")
    if (names or name_prefixes or id_prefixes) and not (
        obj.name in names
        or any(obj.name.startswith(prefix) for prefix in name_prefixes)
        or any(obj.id.startswith(prefix) for prefix in id_prefixes)
    ):
        return False
    return match_labels(obj.spec.labels, filters.get("label"))


def secret_ids(container: ContainerSpec) -> list[str]:
    return [reference.secret_id for reference in container.secrets or ()]


def config_ids(container: ContainerSpec) -> list[str]:
    return [reference.config_id for reference in container.configs or ()]


def show_secret(secret: Secret) -> dict[str, Any]:
    return secret.redacted().to_api()


def show_config(config: Config) -> dict[str, Any]:
    return config.to_api()


def _names(obj: Secret | Config) -> tuple[str, ...]:
    return (obj.name,)


@dataclass(frozen=True)
class Kind(Generic[P]):
    """One of the two kinds, and its endpoints (bound methods, registered in app.py)."""

    word: str
    model: type[P]
    spec_model: type[Model]
    max_size: int
    # The IDs a container spec refers to, and what the API shows of an object.
    referenced_ids: Callable[[ContainerSpec], list[str]]
    show: Callable[[P], dict[str, Any]]

    def parse(self, body: dict[str, Any], object_id: str) -> P:
        """The object a request's spec describes (validated at the spec's own level, so a bad
        field is named as the user wrote it)."""
        return self.model.model_validate({"ID": object_id, "Spec": self.spec_model.from_api(body)})

    def find(self, reads: Reads, ref: str) -> P:
        return resolve(self.word, ref, reads.all(self.model), _names)

    def users(self, obj: P, services: Iterable[Service]) -> list[Service]:
        """The services whose spec refers to the object, in SwarmKit's order (by ID)."""
        found = [
            service
            for service in services
            if obj.id in self.referenced_ids(service.spec.task_template.container_spec)
        ]
        return sorted(found, key=lambda service: service.id)

    async def list(self, request: web.Request) -> web.Response:
        store = store_of(request)
        filters = Filters.parse(request.query.get("filters"))
        filters.validate(ACCEPTED_FILTERS)
        found = sorted(
            (obj for obj in store.all(self.model) if matches(obj, filters)), key=lambda o: o.id
        )
        return json_response([self.show(obj) for obj in found])

    async def inspect(self, request: web.Request) -> web.Response:
        return json_response(self.show(self.find(store_of(request), request.match_info["id"])))

    async def create(self, request: web.Request) -> web.Response:
        store = store_of(request)
        obj = self.parse(await read_json_object(request), new_id())
        validate_name(obj.spec.name)
        refuse_unsupported(self.word, obj.spec)
        validate_data(self.word, obj.spec.data, self.max_size)
        try:
            await store.update(lambda tx: tx.create(obj))
        except NameConflict:
            raise NameConflict(f"{self.word} {obj.name} already exists") from None
        return json_response({"ID": obj.id}, status=201)

    async def update(self, request: web.Request) -> web.Response:
        store = store_of(request)
        requested = self.parse(await read_json_object(request), "")
        version = version_query(request, self.word)
        ref = request.match_info["id"]

        def update(tx: Tx) -> None:
            current = self.find(tx, ref)
            # SwarmKit compares the name and, when given, the data (in constant time).
            data = requested.spec.data
            if requested.name != current.name or (
                data and not hmac.compare_digest(data, current.spec.data or b"")
            ):
                raise InvalidSpec(ONLY_LABELS)
            refuse_unsupported(self.word, requested.spec)
            spec = current.spec.replace(labels=requested.spec.labels)
            tx.update(current.replace(spec=spec, version=Version(index=version)))

        await store.update(update)
        return web.Response()

    async def remove(self, request: web.Request) -> web.Response:
        store = store_of(request)
        ref = request.match_info["id"]

        def remove(tx: Tx) -> None:
            obj = self.find(tx, ref)
            users = self.users(obj, tx.all(Service))
            if users:
                noun = "service" if len(users) == 1 else "services"
                names = ", ".join(service.spec.name for service in users)
                raise InvalidSpec(
                    f"{self.word} '{obj.name}' is in use by the following {noun}: {names}"
                )
            tx.delete(obj)

        await store.update(remove)
        return web.Response(status=204)


SECRETS = Kind(
    word="secret",
    model=Secret,
    spec_model=SecretSpec,
    max_size=MAX_SECRET_SIZE,
    referenced_ids=secret_ids,
    show=show_secret,
)
CONFIGS = Kind(
    word="config",
    model=Config,
    spec_model=ConfigSpec,
    max_size=MAX_CONFIG_SIZE,
    referenced_ids=config_ids,
    show=show_config,
)
