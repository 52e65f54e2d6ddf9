"""Join tokens in Swarm's format: ``SWMTKN-1-<digest of the root CA>-<secret>``.

The digest lets a joining node check the manager's CA before it sends anything; the secret
says which role the node joins as (the worker and the manager token differ only there).
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from swarmlet.errors import InvalidSpec
from swarmlet.pki.certificate import base36

PREFIX = "SWMTKN-1"
_FORMAT = re.compile(r"SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})")
INVALID = "invalid join token"


@dataclass(frozen=True)
class JoinToken:
    digest: str
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}-{self.digest}-{self.secret}"

    @classmethod
    def new(cls, digest: str) -> JoinToken:
        # Swarm's secret: 128 random bits in base 36, 25 characters.
        return cls(digest, base36(secrets.randbits(128), 25))

    @classmethod
    def parse(cls, text: str) -> JoinToken:
        """Raises InvalidSpec("invalid join token") for anything not in Swarm's format."""
        match = _FORMAT.fullmatch(text.strip())
        if match is None:
            raise InvalidSpec(INVALID)
        return cls(match.group(1), match.group(2))

    def rotated(self) -> JoinToken:
        """A new secret for the same CA."""
        return JoinToken.new(self.digest)

    def matches(self, other: str) -> bool:
        # Constant time: the answer must not tell how much of a guessed token was right.
        return hmac.compare_digest(str(self).encode(), other.strip().encode())
