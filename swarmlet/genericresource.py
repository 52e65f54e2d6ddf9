"""Generic resources, as SwarmKit's ``api/genericresource`` handles them: parsed from dockerd's
``--node-generic-resource`` values, counted and claimed by the scheduler, and shown to a task
as ``DOCKER_RESOURCE_<KIND>`` variables.

A node's resources are discrete (``sgx=2``: a count) or named (``gpu=UUID1``, ``gpu=UUID2``: a
set of values); a service reserves a count of a kind (discrete only). What is free on a node is
a ``FreeTable``: each kind's count, or its values still unclaimed, in the order advertised.
Pure functions of plain values, used by the daemon, the scheduler and the agent alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from swarmlet.models import DiscreteResourceSpec, GenericResource, NamedResourceSpec

# A kind's free amount on a node: a count (discrete) or the values not yet claimed (named).
FreeTable = dict[str, int | list[str]]
# What a task reserves: (kind, count) pairs, discrete as the service spec allows.
Wanted = tuple[tuple[str, int], ...]

ENV_PREFIX = "DOCKER_RESOURCE"
# Go's strconv.ParseInt(s, 10, 64): an optional sign and decimal digits, nothing else.
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1


class ParseError(ValueError):
    """A value SwarmKit's genericresource.Parse refuses; the message is Swarm's."""

    def __init__(self, message: str) -> None:
        super().__init__(f"could not parse GenericResource: {message}")


def discrete(kind: str, value: int) -> GenericResource:
    return GenericResource(discrete_resource_spec=DiscreteResourceSpec(kind=kind, value=value))


def named(kind: str, value: str) -> GenericResource:
    return GenericResource(named_resource_spec=NamedResourceSpec(kind=kind, value=value))


def flag_value(value: str) -> str:
    """One ``--node-generic-resource`` value as dockerd's flag takes it (``opts.
    ValidateSingleGenericResource``): it must hold an ``=``."""
    if "=" not in value:
        raise ValueError(f"invalid node-generic-resource format `{value}` expected `name=value`")
    return value


def _go_int(value: str) -> int | None:
    if _GO_INT.fullmatch(value) is None:
        return None
    number = int(value)
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def parse(terms: Iterable[str]) -> list[GenericResource]:
    """SwarmKit's ``genericresource.Parse``: ``kind=value`` terms, one integer under a kind a
    discrete resource, one or more other values under a kind a named set. Kinds come in the
    order first given (Go's map order is random)."""
    tokens: dict[str, list[str]] = {}
    for term in terms:
        parts = term.split("=")
        if len(parts) != 2:
            raise ParseError(f"incorrect term {term}, missing '=' or malformed expression")
        tokens.setdefault(parts[0].strip(), []).append(parts[1].strip())
    resources: list[GenericResource] = []
    for kind, values in tokens.items():
        if len(values) == 1 and (count := _go_int(values[0])) is not None:
            if count < 0:
                raise ParseError(f"cannot ask for negative resource {kind}")
            resources.append(discrete(kind, count))
        elif all(_go_int(value) is None for value in values):
            resources += [named(kind, value) for value in values]
        else:
            # Go prints the list as [a b].
            raise ParseError(
                f"mixed discrete and named resources in expression '{kind}=[{' '.join(values)}]'"
            )
    return resources


def _value(resource: GenericResource) -> str:
    if resource.named_resource_spec is not None:
        return resource.named_resource_spec.value
    if resource.discrete_resource_spec is not None:
        return str(resource.discrete_resource_spec.value)
    return ""


def env(assigned: Iterable[GenericResource]) -> list[str]:
    """SwarmKit's ``EnvFormat(assigned, "DOCKER_RESOURCE")``: one ``DOCKER_RESOURCE_<KIND>``
    per kind, its values joined by commas (kinds in the order assigned; Go's is random)."""
    values: dict[str, list[str]] = {}
    for resource in assigned:
        values.setdefault(resource.kind, []).append(_value(resource))
    return [f"{ENV_PREFIX}_{kind}".upper() + "=" + ",".join(vs) for kind, vs in values.items()]


def wanted(reservations: Sequence[GenericResource] | None) -> Wanted:
    """A task's reservations as (kind, count). A named reservation (SwarmKit's API lets one
    through) counts as unsatisfiable: ``-1``, which no node has."""
    if not reservations:
        return ()
    pairs: list[tuple[str, int]] = []
    for resource in reservations:
        spec = resource.discrete_resource_spec
        pairs.append((spec.kind, spec.value) if spec is not None else (resource.kind, -1))
    return tuple(pairs)


def free_table(resources: Sequence[GenericResource] | None) -> FreeTable | None:
    """A node's advertised resources as a FreeTable (None when it has none). A kind given as
    both discrete and named keeps what came first."""
    if not resources:
        return None
    table: FreeTable = {}
    for resource in resources:
        spec = resource.discrete_resource_spec
        kind = resource.kind
        have = table.get(kind)
        if spec is not None:
            if have is None:
                table[kind] = spec.value
        elif resource.named_resource_spec is not None:
            if have is None:
                table[kind] = [resource.named_resource_spec.value]
            elif isinstance(have, list):
                have.append(resource.named_resource_spec.value)
    return table


def has_enough(free: FreeTable | None, want: Wanted) -> bool:
    """SwarmKit's ``HasEnough`` for each reservation: the kind is free on the node, in at least
    the count wanted (a count used up is no longer there, as in SwarmKit)."""
    if free is None:
        return False
    for kind, count in want:
        have = free.get(kind)
        if have is None or count < 0:
            return False
        if count > (have if isinstance(have, int) else len(have)):
            return False
    return True


def claim(free: FreeTable, want: Wanted) -> list[GenericResource]:
    """SwarmKit's ``Claim``: take what the task reserves from ``free`` (changed in place) and
    return what the task is given: a discrete kind's count, a named kind's first values."""
    given: list[GenericResource] = []
    for kind, count in want:
        have = free.get(kind)
        if have is None or count <= 0:
            continue
        if isinstance(have, int):
            if have >= count:
                given.append(discrete(kind, count))
                _take_count(free, kind, have, count)
        else:
            taken, rest = have[:count], have[count:]
            given += [named(kind, value) for value in taken]
            _keep_values(free, kind, rest)
    return given


def consume(free: FreeTable, assigned: Iterable[GenericResource]) -> None:
    """Take what a task was given from ``free`` (SwarmKit's ``ConsumeNodeResources``); what the
    node no longer advertises is ignored."""
    for resource in assigned:
        kind = resource.kind
        have = free.get(kind)
        if have is None:
            continue
        spec = resource.discrete_resource_spec
        if spec is not None and isinstance(have, int):
            _take_count(free, kind, have, spec.value)
        elif resource.named_resource_spec is not None and isinstance(have, list):
            value = resource.named_resource_spec.value
            if value in have:
                _keep_values(free, kind, [v for v in have if v != value])


def _take_count(free: FreeTable, kind: str, have: int, count: int) -> None:
    if have - count <= 0:
        del free[kind]  # used up: gone from the node's list, as in SwarmKit
    else:
        free[kind] = have - count


def _keep_values(free: FreeTable, kind: str, rest: list[str]) -> None:
    if rest:
        free[kind] = rest
    else:
        del free[kind]
