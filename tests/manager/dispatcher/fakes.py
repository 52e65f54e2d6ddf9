"""The dispatcher's side of an agent's session, for the dispatcher's tests: it records what
the dispatcher sends."""

from __future__ import annotations

from swarmlet.models import Task
from swarmlet.protocol import AssignmentChanges, Assignments, Message, assigned_after


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
        """Every assignment set the node was told, in order: the whole set after each message,
        as the agent's session keeps it (``AssignmentChanges`` applied to the set before)."""
        sets: list[Assignments] = []
        tasks: dict[str, Task] = {}
        for message in self.sent:
            if not isinstance(message, Assignments | AssignmentChanges):
                continue
            if isinstance(message, AssignmentChanges):
                assert sets, "changes sent before the whole set"
                unknown = set(message.removed) - tasks.keys()
                assert not unknown, f"{sorted(unknown)} removed but never assigned"
            tasks = assigned_after(tasks, message)
            whole = sorted(tasks.values(), key=lambda task: task.id)
            sets.append(Assignments(tasks=whole, secrets=message.secrets, configs=message.configs))
        return sets
