"""The messages of the manager↔agent session, shared by the dispatcher and the agent.

One long-lived session per agent carries these as JSON (one message per frame), each with a
``type``. The agent opens it with ``Register``; the manager answers ``Registered``; from then on
the manager sends ``Assignments`` (the full set of tasks for the node, on every change) and the
agent sends ``Heartbeat`` every period and ``StatusUpdates`` whenever a task moves.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from swarmlet.models import NodeDescription, Task, TaskStatus


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)


class Register(Message):
    type: Literal["register"] = "register"
    # Empty on the first join; the node's ID from then on (after a restart).
    node_id: str = ""
    join_token: str = ""
    description: NodeDescription
    addr: str = ""


class Registered(Message):
    type: Literal["registered"] = "registered"
    node_id: str
    heartbeat_period: float
    manager_addrs: list[str] = Field(default_factory=list)


class Heartbeat(Message):
    type: Literal["heartbeat"] = "heartbeat"


class StatusUpdate(Message):
    task_id: str
    status: TaskStatus


class StatusUpdates(Message):
    type: Literal["status"] = "status"
    updates: list[StatusUpdate]


class Assignments(Message):
    type: Literal["assignments"] = "assignments"
    tasks: list[Task]


class SessionError(Message):
    """The manager refuses the session (a bad token, a removed node): the agent must not retry
    with the same credentials."""

    type: Literal["error"] = "error"
    message: str


AnyMessage = Annotated[
    Register | Registered | Heartbeat | StatusUpdates | Assignments | SessionError,
    Field(discriminator="type"),
]
MESSAGE = TypeAdapter(AnyMessage)


def encode(message: Message) -> str:
    return message.model_dump_json(by_alias=True)


def decode(
    data: str | bytes,
) -> Register | Registered | Heartbeat | StatusUpdates | Assignments | SessionError:
    return MESSAGE.validate_json(data)
