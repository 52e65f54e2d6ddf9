"""Secrets over a real session (TLS on loopback): the data reaches the agent of the node whose
task uses it, before the task does, and no other node's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from swarmlet.agent.dependencies import Dependencies
from swarmlet.manager.store import Op
from swarmlet.models import Task
from swarmlet.pki import Credentials
from swarmlet.protocol import StatusUpdate
from tests.manager.dispatcher.builders import DB, task
from tests.manager.dispatcher.loopback import Manager, eventually, joined_session, stop


class Agent:
    """What an agent does with assignments: keeps the secrets, then takes the tasks, noting
    which secrets it had when each set came."""

    def __init__(self) -> None:
        self.dependencies = Dependencies()
        self.assigned: list[tuple[list[str], bytes | None]] = []

    async def assign(self, tasks: Sequence[Task]) -> None:
        secret = self.dependencies.secret(DB.id)
        self.assigned.append(([t.id for t in tasks], secret.spec.data if secret else None))

    def statuses(self) -> list[StatusUpdate]:
        return []


async def test_a_secret_reaches_only_the_agent_whose_task_uses_it(
    manager: Manager, tmp_path: Path
) -> None:
    await manager.store.commit([Op.create(DB)])
    using, other = Agent(), Agent()
    using_id, _, first = await joined_session(
        manager, Credentials(tmp_path / "n2"), using, using.dependencies.replace
    )
    other_id, _, second = await joined_session(
        manager, Credentials(tmp_path / "n3"), other, other.dependencies.replace
    )
    await manager.store.commit(
        [Op.create(task("t1", using_id, (DB,))), Op.create(task("t2", other_id))]
    )
    await eventually(lambda: using.assigned and using.assigned[-1][0] == ["t1"])
    await eventually(lambda: other.assigned and other.assigned[-1][0] == ["t2"])
    # The secret was there when the task came.
    assert using.assigned[-1] == (["t1"], b"hunter2")
    assert other.dependencies.secret(DB.id) is None
    assert all(data is None for _, data in other.assigned)
    for running in (first, second):
        await stop(running)
