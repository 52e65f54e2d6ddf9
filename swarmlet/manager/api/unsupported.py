"""The ``Warnings`` of a service create or update: every field of the spec that swarmlet accepts
and keeps but does not honour yet, so that nothing is ignored silently (the CLI prints each
warning on stderr, as it does Docker's).

A spec keeps every field it was sent: those swarmlet does not declare are kept as they came
(the models' extras) and reach no task. Each one set to something other than its empty value
is named by its path in the Engine API's spec (``ContainerSpec.Privileges``, for one). Every
declared field is honoured: those of ``ContainerSpec`` and ``Resources`` reach the task's
container as Swarm's executor maps them (docs/agent.md), its templates expanded on the
task's node (docs/templates.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from swarmlet.models import ServiceSpec

_WARNING = "{} is not supported by swarmlet yet: it is kept in the spec and ignored"


def spec_warnings(spec: ServiceSpec) -> list[str]:
    """One warning per field of the spec that is set and not honoured."""
    return [_WARNING.format(path) for path in _unhonoured(spec, "")]


def _unhonoured(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from _unhonoured(getattr(value, name), _join(path, info.alias or name))
        for key, extra in (value.model_extra or {}).items():
            if not _is_empty(extra):
                yield _join(path, key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unhonoured(item, f"{path}[{index}]")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_empty(value: Any) -> bool:
    """Go's zero values, as a client that sends every field sends them: null, false, 0, "",
    and lists and objects of nothing else."""
    if isinstance(value, dict):
        return all(_is_empty(item) for item in value.values())
    if isinstance(value, list):
        return all(_is_empty(item) for item in value)
    return value in (None, False, 0, "")
