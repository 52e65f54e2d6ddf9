"""Go-style durations (``1h30m``, ``45s``, ``500ms``), as dockerd and SwarmKit write them.

The grammar is Go's ``time.ParseDuration`` without the sign: one or more decimal numbers, each
with a unit (``ns``, ``us``/``µs``, ``ms``, ``s``, ``m``, ``h``), or a bare ``0``. The result
keeps ``timedelta``'s precision, a microsecond; less is truncated, as Go truncates to its
nanosecond.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # MICRO SIGN, as Go accepts
    "\u03bcs": 1_000,  # GREEK SMALL LETTER MU, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
# Longest units first, so that "ms" is not read as "m" followed by a stray "s".
_UNITS = "|".join(sorted(_NANOSECONDS, key=len, reverse=True))
_TERM = re.compile(rf"([0-9]+\.?[0-9]*|\.[0-9]+)({_UNITS})")
_DURATION = re.compile(rf"(?:{_TERM.pattern})+")

EXAMPLES = "such as 1h30m, 45s or 500ms"


def parse_duration(text: str) -> timedelta:
    """``text`` as a duration; ValueError, naming the text and the expected form, otherwise."""
    if text == "0":
        return timedelta(0)
    if _DURATION.fullmatch(text) is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit (h, m, s, ms, us, ns)"
            f" for each part, {EXAMPLES}"
        )
    nanoseconds = sum(
        (Fraction(Decimal(number)) * _NANOSECONDS[unit] for number, unit in _TERM.findall(text)),
        Fraction(0),
    )
    try:
        return timedelta(microseconds=int(nanoseconds / 1000))
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None
