"""The `filters` query parameter of the list endpoints, read and matched as moby does.

`filters` is JSON: a map of value sets (`{"name": {"web": true}}`, what current clients send)
or, in the old form, a map of lists (`{"name": ["web"]}`). The match functions are the ones of
SwarmKit's controlapi: prefixes for names and IDs, key or key=value for labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from swarmlet.api.common import parse_json
from swarmlet.errors import InvalidSpec


@dataclass(frozen=True)
class Filters:
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> Filters:
        if not raw:
            return cls()
        try:
            data = parse_json(raw)
        except InvalidSpec:
            raise InvalidSpec("invalid filter") from None
        if not isinstance(data, dict):
            raise InvalidSpec("invalid filter")
        values: dict[str, tuple[str, ...]] = {}
        for key, given in data.items():
            if isinstance(given, dict):
                items = list(given)
            elif isinstance(given, list):
                items = given
            else:
                raise InvalidSpec("invalid filter")
            if not all(isinstance(item, str) for item in items):
                raise InvalidSpec("invalid filter")
            values[str(key)] = tuple(items)
        return cls(values)

    def validate(self, accepted: Iterable[str]) -> None:
        allowed = set(accepted)
        for name in self.values:
            if name not in allowed:
                raise InvalidSpec(f"invalid filter '{name}'")

    def get(self, key: str) -> list[str]:
        return list(self.values.get(key, ()))

    def contains(self, key: str) -> bool:
        return key in self.values

    def with_values(self, key: str, values: Sequence[str]) -> Filters:
        return Filters({**self.values, key: tuple(values)})


def match_prefix(value: str, prefixes: Sequence[str]) -> bool:
    """Any of the prefixes (no prefixes: anything matches)."""
    return not prefixes or any(value.startswith(prefix) for prefix in prefixes)


def match_any(value: str, values: Sequence[str]) -> bool:
    return not values or value in values


def parse_labels(expressions: Sequence[str]) -> dict[str, str]:
    """`key` or `key=value` expressions, as moby's ConvertKVStringsToMap reads them."""
    labels: dict[str, str] = {}
    for expression in expressions:
        key, _, value = expression.partition("=")
        labels[key] = value
    return labels


def match_labels(labels: Mapping[str, str], expressions: Sequence[str]) -> bool:
    """Every expression holds: the key is present and, when a value is given, equal."""
    for key, value in parse_labels(expressions).items():
        if key not in labels:
            return False
        if value and labels[key] != value:
            return False
    return True


def match_runtime(runtimes: Sequence[str]) -> bool:
    # Every swarmlet task runs a container; moby lists container tasks under "container" and
    # the empty runtime.
    return not runtimes or "container" in runtimes or "" in runtimes
