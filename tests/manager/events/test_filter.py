"""The `filters` of GET /events on the swarm's events, as moby's daemon/events/filter.go reads
them."""

from __future__ import annotations

import pytest

from swarmlet.manager.events import EventFilter, EventMessage
from swarmlet.manager.events.filter import strip_tag

SERVICE = EventMessage.make(
    "service", "update", "svcid123", 1, {"name": "web", "replicas.old": "1", "replicas.new": "2"}
)
NODE = EventMessage.make("node", "update", "nodeid42", 1, {"name": "node2"})
SECRET = EventMessage.make("secret", "create", "secid7", 1, {"name": "db-password"})
NETWORK = EventMessage.make("network", "remove", "netid9", 1, {"name": "backend"})
LOCAL = EventMessage.make("network", "create", "netid9", 1, {"name": "backend"}, scope="local")


def selects(filters: dict[str, list[str]], event: EventMessage) -> bool:
    return EventFilter(filters).include(event)


@pytest.mark.parametrize(
    ("filters", "event", "expected"),
    [
        ({}, SERVICE, True),
        ({"type": ["service"]}, SERVICE, True),
        ({"type": ["service"]}, NODE, False),
        ({"type": ["node", "service"]}, NODE, True),
        ({"type": ["container"]}, SERVICE, False),
        ({"event": ["update"]}, SERVICE, True),
        ({"event": ["create"]}, SERVICE, False),
        ({"event": ["remove", "update"]}, SERVICE, True),
        ({"event": ["upd"]}, SERVICE, False),
        # A fuzzy event filter (moby#25798) matches by prefix.
        ({"event": ["health_status", "upd"]}, SERVICE, True),
        ({"scope": ["swarm"]}, SERVICE, True),
        ({"scope": ["local"]}, SERVICE, False),
        ({"scope": ["local"]}, LOCAL, True),
        # Names and IDs: equal or by prefix.
        ({"service": ["web"]}, SERVICE, True),
        ({"service": ["we"]}, SERVICE, True),
        ({"service": ["svcid"]}, SERVICE, True),
        ({"service": ["api"]}, SERVICE, False),
        ({"service": ["api", "web"]}, SERVICE, True),
        # Every named key holds, whatever the event's type.
        ({"service": ["web"]}, NODE, False),
        ({"node": ["node2"]}, NODE, True),
        ({"node": ["nodeid"]}, NODE, True),
        ({"node": ["node3"]}, NODE, False),
        ({"secret": ["db-"]}, SECRET, True),
        ({"config": ["db-"]}, SECRET, True),
        ({"network": ["backend"]}, NETWORK, True),
        ({"network": ["frontend"]}, NETWORK, False),
        ({"container": ["web"]}, SERVICE, True),
        ({"container": ["abc"]}, SERVICE, False),
        ({"type": ["service"], "service": ["web"], "event": ["update"]}, SERVICE, True),
        ({"type": ["service"], "service": ["web"], "event": ["create"]}, SERVICE, False),
        # Labels: key, or key=value, among the actor's attributes.
        ({"label": ["replicas.new"]}, SERVICE, True),
        ({"label": ["replicas.new=2"]}, SERVICE, True),
        ({"label": ["replicas.new=3"]}, SERVICE, False),
        ({"label": ["replicas.new=2", "image.new"]}, SERVICE, False),
        ({"label": ["deploy"]}, NODE, False),
        # Image: the ID or the image attribute; swarm events have neither.
        ({"image": ["busybox"]}, SERVICE, False),
        ({"image": ["svcid123"]}, SERVICE, True),
        # Keys moby does not know select everything.
        ({"until-the-end": ["x"]}, SERVICE, True),
    ],
)
def test_filters(filters, event, expected):
    assert selects(filters, event) is expected


def test_image_filters_match_without_the_tag():
    image = EventMessage.make("image", "pull", "sha256:abc", 1, {"name": "busybox:latest"})
    container = EventMessage.make("container", "start", "c1", 1, {"image": "docker.io/nginx:1"})
    assert selects({"image": ["busybox"]}, image)
    assert selects({"image": ["busybox:latest"]}, image)
    assert selects({"image": ["nginx"]}, container)
    assert not selects({"image": ["redis"]}, container)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", "busybox"),
        ("busybox:latest", "busybox"),
        ("docker.io/library/busybox:1.36", "busybox"),
        ("docker.io/user/app:1", "user/app"),
        ("localhost:5000/app:v2", "localhost:5000/app"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("app@sha256:0123", "app"),
        ("swarmlet-test/busybox:latest", "swarmlet-test/busybox"),
    ],
)
def test_strip_tag(image, expected):
    assert strip_tag(image) == expected
