"""The base of every model: immutable, in the Engine API's JSON shape, unknown fields kept.

Python names are snake_case; the JSON names are the Engine API's PascalCase, produced by
``api_name`` (``node_id`` → ``NodeID``). Fields swarmlet does not interpret yet are kept as
they came (``extra="allow"``), so a spec round-trips through the store unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Words that the Engine API spells in capitals.
_ACRONYMS = {
    "id": "ID",
    "ids": "IDs",
    "ip": "IP",
    "ips": "IPs",
    "os": "OS",
    "tls": "TLS",
    "ca": "CA",
    "cpus": "CPUs",
    "pid": "PID",
    "tty": "TTY",
    "dns": "DNS",
    "vni": "VNI",
    "ipam": "IPAM",
    "ipv6": "IPv6",
}


def api_name(field_name: str) -> str:
    return "".join(_ACRONYMS.get(part, part.capitalize()) for part in field_name.split("_"))


class Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        populate_by_name=True,
        alias_generator=api_name,
        ser_json_timedelta="float",
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # Go clients send null for an empty map or list; it means "not set", like a missing key.
        if isinstance(data, dict) and None in data.values():
            return {key: value for key, value in data.items() if value is not None}
        return data

    def to_api(self) -> dict[str, Any]:
        """The object as the Engine API returns it."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_api(cls, data: Any) -> Self:
        return cls.model_validate(data)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields (by Python name) changed.

        Not validated again: input is validated once, at the edge; code inside passes values
        of the right types.

        What ``model_copy(update=...)`` makes, built directly: the copy shares the original's
        set of explicitly set fields (when the changes add none) and its extra fields rather
        than copying them. Models are frozen, so neither is ever changed in place, and every
        change of a task in a manager makes such a copy: copying those two per version was
        about a fifth of a task version's memory, and its time (benchmarks/scale.py).
        """
        cls = type(self)
        copy = cls.__new__(cls)
        fields_set = self.__pydantic_fields_set__
        if not fields_set.issuperset(changes):
            fields_set = fields_set | changes.keys()
        object.__setattr__(copy, "__dict__", {**self.__dict__, **changes})
        object.__setattr__(copy, "__pydantic_fields_set__", fields_set)
        object.__setattr__(copy, "__pydantic_extra__", self.__pydantic_extra__)
        object.__setattr__(copy, "__pydantic_private__", self.__pydantic_private__)
        return copy


class Version(Model):
    index: int = 0


class StoredObject(Model):
    """What the store holds: an ID, a version only the store sets, and timestamps."""

    id: str
    version: Version = Field(default_factory=Version)
    created_at: datetime | None = None
    updated_at: datetime | None = None
