"""One event of ``GET /events``, in the shape of moby's ``events.Message``.

Swarm's events (``convert.py``) have no ``status``, ``id`` or ``from``: Go's ``omitempty``
leaves them out, and the JSON is written as Go's encoder writes it (attributes in key order,
``<``, ``>`` and ``&`` escaped), one message per line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

SWARM_SCOPE = "swarm"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def unix_nano(moment: datetime) -> int:
    """A moment as nanoseconds since the epoch, exactly (a naive one is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND * 1000


@dataclass(frozen=True, slots=True)
class EventMessage:
    type: str
    action: str
    actor_id: str
    time_nano: int
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    scope: str = SWARM_SCOPE

    @classmethod
    def make(
        cls,
        type_: str,
        action: str,
        actor_id: str,
        time_nano: int,
        attributes: Mapping[str, str],
        scope: str = SWARM_SCOPE,
    ) -> EventMessage:
        """A message whose attributes are a read-only copy of ``attributes``."""
        return cls(type_, action, actor_id, time_nano, MappingProxyType(dict(attributes)), scope)

    @property
    def time(self) -> int:
        return self.time_nano // 1_000_000_000

    def to_api(self) -> dict[str, Any]:
        return {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(sorted(self.attributes.items()))},
            "scope": self.scope,
            "time": self.time,
            "timeNano": self.time_nano,
        }

    def line(self) -> bytes:
        """The message as the daemon writes it to the stream: Go's JSON and a newline."""
        text = json.dumps(self.to_api(), separators=(",", ":"), ensure_ascii=False)
        return (text.translate(_HTML) + "\n").encode()
