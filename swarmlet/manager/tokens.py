"""Join tokens in Swarm's format: ``SWMTKN-1-<digest of the root CA>-<secret>``.

The digest lets a joining node check the manager's CA before it sends anything (the PKI issue
makes it the real CA's digest; until then it is a random value fixed at ``swarm init``).
"""

from __future__ import annotations

import secrets

PREFIX = "SWMTKN-1"
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def new_digest() -> str:
    """A 256-bit value in base 36, the width of Swarm's CA digest (50 characters)."""
    return _base36(secrets.randbits(256), 50)


def new_token(digest: str) -> str:
    # Swarm's secret part is 128 random bits in base 36 (25 characters).
    return f"{PREFIX}-{digest}-{_base36(secrets.randbits(128), 25)}"


def digest_of(token: str) -> str:
    """The CA digest a token carries ('' when the token is not in Swarm's format)."""
    parts = token.split("-")
    if len(parts) != 4 or f"{parts[0]}-{parts[1]}" != PREFIX:
        return ""
    return parts[2]


def rotate(token: str) -> str:
    """A new token for the same CA."""
    return new_token(digest_of(token) or new_digest())
