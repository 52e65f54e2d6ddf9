"""The swarm's own events for ``docker events`` (a manager's only; docs/events.md)."""

from swarmlet.manager.events.convert import EVENT_TYPES, swarm_event
from swarmlet.manager.events.filter import EventFilter
from swarmlet.manager.events.log import Subscription, SwarmEvents, swarm_events_for
from swarmlet.manager.events.message import SWARM_SCOPE, EventMessage, unix_nano

__all__ = [
    "EVENT_TYPES",
    "SWARM_SCOPE",
    "EventFilter",
    "EventMessage",
    "Subscription",
    "SwarmEvents",
    "swarm_event",
    "swarm_events_for",
    "unix_nano",
]
