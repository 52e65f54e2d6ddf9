"""Which manager runs the controllers: the leader, for as long as its term lasts.

A swarm on SQLite has one manager, which leads for as long as it runs (``SoleManager``); a
swarm on etcd elects its leader through a lease (``swarmlet.manager.etcd.election``). Both
run the same way: ``await leadership.run(lead)`` calls ``lead(term)`` whenever this manager
becomes leader, and cancels it the moment the term ends, so the controllers start and stop
alike whatever the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Term:
    """A manager's time as leader: its lease and the revision its leader key was made at (a
    write fenced on that revision lands only while the term lasts). A sole manager's term
    has neither (0)."""

    node_id: str
    lease: int = 0
    revision: int = 0


# What the leader runs for as long as its term lasts (the manager's controllers).
Lead = Callable[[Term], Coroutine[Any, Any, None]]


class Leadership(Protocol):
    async def run(self, lead: Lead) -> None:
        """Run ``lead`` during every term of this manager's, until cancelled."""
        ...


class ManagerView(Protocol):
    """Which managers lead and are reachable, asked when the API answers (``node ls``,
    ``node inspect``, a demotion's quorum check): a manager's status is not stored, since
    it changes with every lease rather than with the node."""

    async def leader(self) -> str | None:
        """The leader's node ID, or None while there is none."""
        ...

    async def reachable(self) -> set[str]:
        """The node IDs of the managers that are reachable now."""
        ...


class SoleManager:
    """The one manager of a swarm on SQLite: it leads from start to end, and is the only
    manager the view knows (as a ``ManagerView``: itself the leader, and reachable)."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id

    async def leader(self) -> str | None:
        return self._node_id

    async def reachable(self) -> set[str]:
        return {self._node_id}

    async def run(self, lead: Lead) -> None:
        await lead(Term(self._node_id))
        # The controllers never end on their own; if they did, the manager still leads.
        await asyncio.Event().wait()
