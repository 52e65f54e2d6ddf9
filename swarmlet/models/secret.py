"""Secrets and configs, and the references a service's containers make to them.

``Data`` is base64 on the wire (Go's ``[]byte``). The models hold it as ``bytes``: decoded once,
when a request is validated (bad base64 is a 400 naming the field), and encoded again whenever
the object is written as JSON. ``to_api`` therefore includes a secret's data, because it is
what the store persists; the API answers with ``Secret.redacted()`` instead, since Swarm never
returns a secret's data (a config's, it does).

A reference names its object by ID (``SecretID``; the name is for display and is checked to
match) and says where the task sees it: a ``File`` (name, owner and mode of the file in the
container) or, for configs only, a ``Runtime`` target (used by the runtime, not mounted).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer

from swarmlet.models.base import Model, OmitEmpty, StoredObject


def _decode_base64(value: Any) -> Any:
    # Go's decoder skips line breaks; anything else that is not base64 is refused.
    if isinstance(value, str):
        try:
            return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"illegal base64 data: {exc}") from None
    return value


def _encode_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    PlainSerializer(_encode_base64, return_type=str, when_used="json"),
]


class Driver(Model):
    """A secret driver or a template driver, as the Engine API names one."""

    name: OmitEmpty[str] = ""
    options: OmitEmpty[dict[str, str]] = Field(default_factory=dict)


class SecretSpec(Model):
    name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    data: Base64Bytes | None = None
    driver: Driver | None = None
    templating: Driver | None = None


class Secret(StoredObject):
    spec: SecretSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def redacted(self) -> Secret:
        """The secret as the API shows it: without its data."""
        return self.replace(spec=self.spec.replace(data=None))


class ConfigSpec(Model):
    name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    data: Base64Bytes | None = None
    templating: Driver | None = None


class Config(StoredObject):
    spec: ConfigSpec

    @property
    def name(self) -> str:
        return self.spec.name


class FileTarget(Model):
    """The file a secret or config becomes in the container (under /run/secrets/ for a
    relative secret name, at the container's root for a relative config name)."""

    name: str = ""
    uid: str = Field(default="", alias="UID")
    gid: str = Field(default="", alias="GID")
    # The file mode as an integer (the CLI sends 0o444 = 292 unless told otherwise).
    mode: int = 0


class RuntimeTarget(Model):
    """A config used by the runtime itself (Swarm's credential specs), not mounted."""


class SecretReference(Model):
    file: FileTarget | None = None
    secret_id: str = ""
    secret_name: str = ""


class ConfigReference(Model):
    file: FileTarget | None = None
    runtime: RuntimeTarget | None = None
    config_id: str = ""
    config_name: str = ""
