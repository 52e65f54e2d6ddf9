"""The base of every model: immutable, in the Engine API's JSON shape, unknown fields kept.

Python names are snake_case; the JSON names are the Engine API's PascalCase, produced by
``api_name`` (``node_id`` → ``NodeID``). Fields swarmlet does not interpret yet are kept as
they came (``extra="allow"``), so a spec round-trips through the store unchanged.

What a Go client leaves empty it still sends: ``null`` for a map, list or pointer, and the
field type's zero value (``""``, ``0``) for the rest. ``null`` always means "not set". The zero
value means "not set" only for the fields declared ``ZeroIsDefault[...]``: those where moby's
conversion to SwarmKit (daemon/cluster/convert) takes it as the default, e.g. ``case
types.UpdateOrderStopFirst, "":``. Such a field then takes its default, which is what the
API answers afterwards, as Swarm answers the value it converted to (``"stop-first"``).
Elsewhere the zero value is a value, checked as any other (an empty node role is refused, as
in Swarm).
"""

from __future__ import annotations

from datetime import datetime
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Self, TypeVar, Union, get_args, get_origin

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
    "cas": "CAs",
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


class _ZeroIsDefault:
    """The marker of ``ZeroIsDefault``."""

    def __repr__(self) -> str:
        return "ZeroIsDefault"


_ZERO_IS_DEFAULT = _ZeroIsDefault()
_T = TypeVar("_T")
# A field whose Go zero value ("" for a string or a string enum, 0 for a number) means "not
# set": it takes the field's default, as a missing key does.
ZeroIsDefault = Annotated[_T, _ZERO_IS_DEFAULT]


def _zero_of(annotation: Any, where: str) -> object:
    """The Go zero value of a field's type (``X | None`` counts as ``X``)."""
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not NoneType]
        if len(members) == 1:
            annotation = members[0]
    if isinstance(annotation, type) and issubclass(annotation, str):
        return ""
    if isinstance(annotation, type) and issubclass(annotation, int | float):
        return 0
    raise TypeError(f"{where}: ZeroIsDefault needs a string or number type, not {annotation!r}")


def _is_zero(value: object, zero: object) -> bool:
    # type() rather than isinstance(): False is not an int's zero (Go refuses a bool there).
    return type(value) in (str, int, float) and value == zero


class Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        populate_by_name=True,
        alias_generator=api_name,
        ser_json_timedelta="float",
    )

    # The ZeroIsDefault fields, by JSON name and by Python name, with their zero values.
    _zero_defaults: ClassVar[dict[str, object]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        zeros: dict[str, object] = {}
        for name, info in cls.model_fields.items():
            if any(item is _ZERO_IS_DEFAULT for item in info.metadata):
                zero = _zero_of(info.annotation, f"{cls.__name__}.{name}")
                zeros[name] = zeros[info.alias or name] = zero
        cls._zero_defaults = zeros

    @model_validator(mode="before")
    @classmethod
    def _unset_is_absent(cls, data: Any) -> Any:
        """null, and the zero value of a ZeroIsDefault field, mean "not set", like a missing
        key (see the module's docstring)."""
        if not isinstance(data, dict):
            return data
        zeros = cls._zero_defaults
        if None not in data.values() and not any(
            _is_zero(data.get(key), zero) for key, zero in zeros.items()
        ):
            return data
        return {
            key: value
            for key, value in data.items()
            if value is not None and not (key in zeros and _is_zero(value, zeros[key]))
        }

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
