"""The dispatcher: agent sessions, heartbeats, assignments and task status."""

from swarmlet.manager.dispatcher.assignments import AgentConnection
from swarmlet.manager.dispatcher.dispatcher import Dispatcher, SessionRefused

__all__ = ["AgentConnection", "Dispatcher", "SessionRefused"]
