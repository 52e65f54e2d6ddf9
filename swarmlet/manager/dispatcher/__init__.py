"""The dispatcher: agent sessions, heartbeats, assignments and task status."""

from swarmlet.manager.dispatcher.dispatcher import (
    AgentConnection,
    Dispatcher,
    SessionRefused,
)

__all__ = ["AgentConnection", "Dispatcher", "SessionRefused"]
