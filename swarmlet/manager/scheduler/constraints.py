"""Placement constraints, such as ``node.labels.zone==east`` or ``node.ip!=10.0.0.0/8``.

Swarm's semantics (SwarmKit ``manager/constraint``): the operators are ``==`` and ``!=``; keys
match case-insensitively, label names case-sensitively; values compare case-insensitively; an
attribute or label the node lacks compares as the empty string, so ``node.labels.sgx != 0`` also
matches nodes without an ``sgx`` label. ``node.ip`` compares the node's ``Status.Addr`` with an
address or a CIDR subnet.

Parsing is stricter than Swarm's in one way: Swarm accepts an unknown key or a ``node.ip`` value
that is not an address and then never matches any node, leaving tasks pending forever; here the
spec is refused up front with a message that names the expression.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from swarmlet.errors import InvalidSpec
from swarmlet.models import Node

# Swarm's grammar for keys and values; a value cannot hold an operator-like character
# ('=', '!', '<', '>', '~'), so operators can be added later without ambiguity.
_KEY = re.compile(r"[a-z_][a-z0-9\-_.]+", re.IGNORECASE | re.ASCII)
_VALUE = re.compile(r"[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+", re.IGNORECASE | re.ASCII)

NODE_LABEL_PREFIX = "node.labels."
ENGINE_LABEL_PREFIX = "engine.labels."
_ATTRIBUTES = (
    "node.id",
    "node.hostname",
    "node.ip",
    "node.role",
    "node.platform.os",
    "node.platform.arch",
)
_KNOWN_KEYS = ", ".join(
    (*_ATTRIBUTES, NODE_LABEL_PREFIX + "<label>", ENGINE_LABEL_PREFIX + "<label>")
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Operator(StrEnum):
    EQ = "=="
    NE = "!="


# Swarm looks for '==' first: "a!=b==c" splits at '==' (and then fails on its key).
_OPERATORS = (Operator.EQ, Operator.NE)


@dataclass(frozen=True, slots=True)
class Constraint:
    """One parsed expression. ``key`` is lower-cased except for the label name."""

    key: str
    operator: Operator
    value: str
    # For node.ip: the value as an address or a subnet, parsed once.
    network: IPNetwork | None = None

    def matches(self, node: Node) -> bool:
        if self.key == "node.ip":
            return self._matches_ip(node.status.addr)
        equal = self.value.casefold() == _attribute(self.key, node).casefold()
        return equal if self.operator is Operator.EQ else not equal

    def _matches_ip(self, addr: str) -> bool:
        assert self.network is not None  # parse_constraints sets it for every node.ip key
        node_ip = _parse_ip(addr)
        within = node_ip is not None and node_ip in self.network
        return within if self.operator is Operator.EQ else not within

    def __str__(self) -> str:
        return f"{self.key}{self.operator}{self.value}"


def _attribute(key: str, node: Node) -> str:
    """The node's value for a (validated, lower-cased) key; '' when the node lacks it."""
    if key.startswith(NODE_LABEL_PREFIX):
        return node.spec.labels.get(key[len(NODE_LABEL_PREFIX) :], "")
    if key.startswith(ENGINE_LABEL_PREFIX):
        return node.description.engine.labels.get(key[len(ENGINE_LABEL_PREFIX) :], "")
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.description.hostname
    if key == "node.role":
        return str(node.spec.role)
    if key == "node.platform.os":
        return node.description.platform.os
    if key == "node.platform.arch":
        return node.description.platform.architecture
    raise AssertionError(f"unvalidated constraint key {key!r}")


def _parse_ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # Go's net.IP.Equal treats ::ffff:10.0.0.1 and 10.0.0.1 as the same address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_network(value: str) -> IPNetwork | None:
    address = _parse_ip(value)
    if address is not None:
        return ipaddress.ip_network(address)
    if "/" not in value:
        return None
    try:
        # Like Go's ParseCIDR, host bits may be set: 10.0.0.7/24 means 10.0.0.0/24.
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _normalize_key(key: str, expression: str) -> str:
    """The key with its fixed part lower-cased, or InvalidSpec naming the expression."""
    lowered = key.lower()
    if lowered in _ATTRIBUTES:
        return lowered
    for prefix in (NODE_LABEL_PREFIX, ENGINE_LABEL_PREFIX):
        if lowered.startswith(prefix) and len(key) > len(prefix):
            # Label names are case-sensitive, like the labels themselves.
            return prefix + key[len(prefix) :]
    raise InvalidSpec(
        f"invalid constraint {expression!r}: unknown key {key!r} (expected one of {_KNOWN_KEYS})"
    )


def parse_constraint(expression: str) -> Constraint:
    for operator in _OPERATORS:
        if operator not in expression:
            continue
        raw_key, raw_value = expression.split(operator, 1)
        key, value = raw_key.strip(), raw_value.strip()
        if not _KEY.fullmatch(key):
            raise InvalidSpec(f"invalid constraint {expression!r}: key {key!r} is invalid")
        if not _VALUE.fullmatch(value):
            raise InvalidSpec(f"invalid constraint {expression!r}: value {value!r} is invalid")
        key = _normalize_key(key, expression)
        network = None
        if key == "node.ip":
            network = _parse_network(value)
            if network is None:
                raise InvalidSpec(
                    f"invalid constraint {expression!r}: {value!r} is not an IP address"
                    " or a CIDR subnet"
                )
        return Constraint(key, operator, value, network)
    raise InvalidSpec(
        f"invalid constraint {expression!r}: expected one operator from {', '.join(_OPERATORS)}"
    )


def parse_constraints(expressions: Sequence[str]) -> list[Constraint]:
    """Parse a service's ``Placement.Constraints``; InvalidSpec names the first bad one."""
    return [parse_constraint(expression) for expression in expressions]


def constraints_match(constraints: Iterable[Constraint], node: Node) -> bool:
    """Whether the node satisfies every constraint (they are ANDed)."""
    return all(constraint.matches(node) for constraint in constraints)
