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

Keys are matched as Go's ``encoding/json`` matches them: the exact JSON name first, else a
case-insensitive match (``{"global": {}}`` is ``Global``); when two keys of
a body name the same field, the last one wins. A key that names no field is kept as an extra.

What is written back leaves out what Go's ``omitempty`` leaves out. ``None`` is never written
(a nil pointer, map or slice). A field declared ``OmitEmpty[...]`` is also left out when it
holds its type's empty value (``""``, ``0``, ``False``, ``[]``, ``{}``), as Go omits a zero
value (a field whose default is None declares it ``ZeroIsDefault[...]``: its empty value is
read as None); a number field declared ``OmitUnset[...]`` with a default ``Unset(n)`` is left
out while it holds that default, where Swarm keeps a nil pointer and swarmlet, reading the
field, applies the default Swarm applies (a restart policy's ``Delay``).
"""

from __future__ import annotations

import operator
from datetime import datetime
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Self, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

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


# The validation context of JSON swarmlet wrote itself, with ``model_dump_json(by_alias=True,
# exclude_none=True)``: the store's rows and the agents' session messages. Its keys are the
# exact names and it holds no null, so Go's key matching (``Model._go_keys``) is skipped: that
# was two fifths of reading a task back, and a fifth of a simulated node's work reading its
# assignments (benchmarks/scale_managers.py). A zero that ``replace`` put in a ZeroIsDefault
# field is read back as the zero it was.
OWN_JSON: dict[str, bool] = {"own": True}


class _ZeroIsDefault:
    """The marker of ``ZeroIsDefault``."""

    def __repr__(self) -> str:
        return "ZeroIsDefault"


_ZERO_IS_DEFAULT = _ZeroIsDefault()
_T = TypeVar("_T")
# A field whose Go zero value ("" for a string or a string enum, 0 for a number, false, an
# empty list or map) means "not set": it takes the field's default, as a missing key does.
# On a field whose default is None, it is also how Go's omitempty is declared: the empty value
# becomes None, which is never written (and costs nothing as it is written).
ZeroIsDefault = Annotated[_T, _ZERO_IS_DEFAULT]


# A field that Go's omitempty leaves out of what is written when it holds its empty value
# (checked as it is written: for a field whose default is None, ZeroIsDefault does the same
# once, as it is read).
# operator.not_ is Go's test (false, 0, "", empty) and, being C, costs no Python call per field.
OmitEmpty = Annotated[_T, Field(exclude_if=operator.not_)]


class Unset(int):
    """The default of an ``OmitUnset`` field: read as the number it is, never written."""


# A number field left out of what is written while it holds its default, declared ``Unset(n)``
# (Swarm's nil pointer, where Swarm applies the same default). Any value set, even the same
# number, is written.
OmitUnset = Annotated[_T, Field(exclude_if=Unset.__instancecheck__)]


def _fold(key: str) -> str:
    """A key as Go's case-insensitive match compares it (its simple folding: the long s,
    U+017F, is s; the Kelvin sign, U+212A, is k)."""
    return key.lower().replace("\u017f", "s")


def _zero_of(annotation: Any, where: str) -> object:
    """The Go zero value of a field's type (``X | None`` counts as ``X``)."""
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not NoneType]
        if len(members) == 1:
            annotation = members[0]
    origin = get_origin(annotation)
    if origin in (list, tuple):
        return []
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, str):
        return ""
    if annotation is bool:
        return False
    if isinstance(annotation, type) and issubclass(annotation, int | float):
        return 0
    raise TypeError(
        f"{where}: ZeroIsDefault needs a string, number, bool, list or map type, not {annotation!r}"
    )


def _is_zero(value: object, zero: object) -> bool:
    # type() rather than isinstance(): False is not an int's zero (Go refuses a bool there).
    kind = type(value)
    if kind in (str, int, float):
        return type(zero) in (str, int, float) and value == zero
    if kind is bool:
        return value is False and zero is False
    return kind in (list, dict) and not value and type(zero) is kind


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
    _zero_keys: ClassVar[frozenset[str]] = frozenset()
    # The JSON names of the fields, and each by its folded form. A Python name (``node_id``)
    # that folds to none is left as it is: pydantic takes it too (populate_by_name).
    _exact_keys: ClassVar[frozenset[str]] = frozenset()
    _folded_keys: ClassVar[dict[str, str]] = {}
    # The Python names: keys that need no matching either, as swarmlet's own code builds a
    # model (``TaskStatus(state=...)``: an agent's every step, a manager's every write).
    _python_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        zeros: dict[str, object] = {}
        folded: dict[str, str] = {}
        for name, info in cls.model_fields.items():
            alias = info.alias or name
            folded.setdefault(_fold(alias), alias)
            if any(item is _ZERO_IS_DEFAULT for item in info.metadata):
                zero = _zero_of(info.annotation, f"{cls.__name__}.{name}")
                zeros[name] = zeros[alias] = zero
            omits_unset = info.exclude_if == Unset.__instancecheck__
            if omits_unset and not isinstance(info.default, Unset):
                raise TypeError(f"{cls.__name__}.{name}: an OmitUnset field's default is Unset(n)")
        cls._zero_defaults = zeros
        cls._zero_keys = frozenset(zeros)
        cls._exact_keys = frozenset(folded.values())
        cls._folded_keys = folded
        cls._python_keys = frozenset(cls.model_fields)

    @model_validator(mode="before")
    @classmethod
    def _go_keys(cls, data: Any, info: ValidationInfo) -> Any:
        """Keys matched as Go's decoder matches them; null, and the zero value of a
        ZeroIsDefault field, mean "not set", like a missing key (see the module's
        docstring). Not for swarmlet's own JSON (``OWN_JSON``)."""
        if info.context is OWN_JSON:
            return data
        if not isinstance(data, dict):
            return data
        if not (cls._exact_keys.issuperset(data) or cls._python_keys.issuperset(data)):
            folded = cls._folded_keys
            matched: dict[str, Any] = {}
            for sent, value in data.items():
                key = sent
                if key not in cls._exact_keys and isinstance(key, str):
                    key = folded.get(_fold(key), key)
                matched.pop(key, None)  # the last of two keys for one field wins, as in Go
                matched[key] = value
            data = matched
        zeros = cls._zero_defaults
        if None not in data.values() and (
            cls._zero_keys.isdisjoint(data)
            or not any(_is_zero(data[key], zeros[key]) for key in cls._zero_keys.intersection(data))
        ):
            return data
        return {
            key: value
            for key, value in data.items()
            if value is not None and not (key in zeros and _is_zero(value, zeros[key]))
        }

    # Fields swarmlet keeps that the Engine API's object does not have (by Python name): the
    # store keeps them, the API never shows them.
    _not_in_api: ClassVar[set[str] | None] = None

    def to_api(self) -> dict[str, Any]:
        """The object as the Engine API returns it."""
        return self.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude=self._not_in_api
        )

    def to_api_json(self) -> str:
        """``to_api()`` as JSON text, written by pydantic without a dict between."""
        return self.model_dump_json(by_alias=True, exclude_none=True, exclude=self._not_in_api)

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
