"""Which events a ``filters`` query selects, as moby's ``daemon/events/filter.go`` decides.

Every key given must hold (a key with several values: any of them):
- ``type``, ``scope``: exactly; ``event``: the action exactly (by prefix when one of the
  values is ``health_status``, ``exec_create`` or ``exec_start``, moby#25798);
- ``daemon``, ``container``, ``plugin``, ``volume``, ``network``, ``node``, ``service``,
  ``secret``, ``config``: the actor's ID or its ``name`` attribute, equal or by prefix,
  whatever the event's type (``service=web`` leaves out every event not about ``web*``);
- ``image``: the actor's ID or image name (``name`` on image events, ``image`` elsewhere),
  with or without its tag;
- ``label``: ``key`` or ``key=value`` among the actor's attributes.

Keys moby does not know are ignored, as there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from swarmlet.manager.events.message import EventMessage

NAMED_TYPES = (
    "daemon",
    "container",
    "plugin",
    "volume",
    "network",
    "node",
    "service",
    "secret",
    "config",
)
_FUZZY_EVENTS = frozenset({"health_status", "exec_create", "exec_start"})


def _exact(values: Sequence[str], source: str) -> bool:
    return not values or source in values


def _fuzzy(values: Sequence[str], source: str) -> bool:
    return not values or any(source.startswith(value) for value in values)


def _labels(values: Sequence[str], attributes: Mapping[str, str]) -> bool:
    if not values:
        return True
    if not attributes:
        return False
    for value in values:
        key, has_value, wanted = value.partition("=")
        if key not in attributes or (has_value and attributes[key] != wanted):
            return False
    return True


def strip_tag(image: str) -> str:
    """An image reference without its tag or digest, in its familiar form (``busybox`` for
    ``docker.io/library/busybox:latest``)."""
    name = image.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


@dataclass(frozen=True)
class EventFilter:
    values: Mapping[str, Sequence[str]]

    def include(self, event: EventMessage) -> bool:
        get = self.values.get
        return (
            self._event(event.action)
            and _exact(get("type", ()), event.type)
            and _exact(get("scope", ()), event.scope)
            and all(self._named(key, event) for key in NAMED_TYPES)
            and self._image(event)
            and _labels(get("label", ()), event.attributes)
        )

    def _event(self, action: str) -> bool:
        values = self.values.get("event", ())
        if any(value in _FUZZY_EVENTS for value in values):
            return _fuzzy(values, action)
        return _exact(values, action)

    def _named(self, key: str, event: EventMessage) -> bool:
        values = self.values.get(key, ())
        if not values:
            return True
        name = event.attributes.get("name", "")
        return _fuzzy(values, event.actor_id) or _fuzzy(values, name)

    def _image(self, event: EventMessage) -> bool:
        values = self.values.get("image", ())
        if not values:
            return True
        name = event.attributes.get("name" if event.type == "image" else "image", "")
        candidates = (event.actor_id, name, strip_tag(event.actor_id), strip_tag(name))
        return any(candidate in values for candidate in candidates)
