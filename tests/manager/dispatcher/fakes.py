"""The dispatcher's side of an agent's session, for the dispatcher's tests: it records what
the dispatcher sends."""

from __future__ import annotations

from swarmlet.protocol import Assignments, Message


class FakeConnection:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.closed = False
        self.reason = ""

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def close(self, reason: str = "node removed from the swarm") -> None:
        self.closed = True
        self.reason = reason

    def assignments(self) -> list[Assignments]:
        """Every assignment set sent, in order."""
        return [message for message in self.sent if isinstance(message, Assignments)]
