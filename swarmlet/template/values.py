"""The Go values a template sees, and how Go names, tests and prints them (pure).

A ``str`` is a Go ``string``, an ``int`` an ``int``, a ``float`` a ``float64``, a ``bool`` a
``bool``, a ``dict`` a ``map[string]string``, a ``list`` a ``[]string``, ``None`` Go's invalid
value (nothing: a missing result) and a ``GoStruct`` a struct.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmlet.template.lex import go_quote

__all__ = ["GoStruct", "go_float", "go_quote", "go_type", "is_true", "sprint_value"]


@dataclass(frozen=True)
class GoStruct:
    """A Go struct value: its type's name as Go prints it, and its exported fields in order
    (``unexported``: the names of its unexported ones, which a template may not read)."""

    type_name: str
    fields: Mapping[str, Any]
    unexported: frozenset[str] = field(default_factory=frozenset)
    pointer: bool = False

    @property
    def go_type(self) -> str:
        return ("*" if self.pointer else "") + self.type_name


def go_type(value: Any) -> str:
    if isinstance(value, GoStruct):
        return value.go_type
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]string"
    if isinstance(value, list):
        return "[]string"
    return "<nil>"


def is_true(value: Any) -> bool | None:
    """Go's truth of a value (``if``, ``with``, ``and``, ``or``, ``not``): false for nothing,
    an empty string, map or list, zero and false; a struct is true. None: no truth."""
    if value is None:
        return False
    if isinstance(value, GoStruct):
        return True
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str | dict | list):
        return len(value) > 0
    return None


def go_float(value: float) -> str:
    """``fmt``'s ``%v`` of a float64: the shortest digits, as ``%e`` below 1e-4 or from 1e6."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    # Python's repr has the shortest digits that read back the same, as Go's 'g' -1 has.
    prefix = "-" if value < 0 else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction.rstrip("0")).lstrip("0") or "0"
    exp10 = int(exp_text or 0) + len(whole.lstrip("0")) - 1
    if not whole.lstrip("0"):  # 0.000123: the exponent is where the first digit is
        exp10 = int(exp_text or 0) - (len(fraction) - len(fraction.lstrip("0"))) - 1
    digits = digits.rstrip("0") or "0"
    if exp10 < -4 or exp10 >= 6:
        text = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{text}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exp10 < 0:
        return f"{prefix}0.{'0' * (-exp10 - 1)}{digits}"
    if len(digits) <= exp10 + 1:
        return prefix + digits + "0" * (exp10 + 1 - len(digits))
    return f"{prefix}{digits[: exp10 + 1]}.{digits[exp10 + 1 :]}"


def sprint_value(value: Any) -> str:
    """``fmt.Sprint`` of one value (``%v``)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{sprint_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(sprint_value(item) for item in value) + "]"
    if isinstance(value, GoStruct):
        inner = " ".join(sprint_value(item) for item in value.fields.values())
        return ("&" if value.pointer else "") + "{" + inner + "}"
    return str(value)
