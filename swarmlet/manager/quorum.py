"""What a manager refuses so that the swarm keeps its quorum, in Swarm's words: leaving
(moby's ``Cluster.Leave``), demoting (SwarmKit's ``controlapi.UpdateNode`` with
``raft.CanRemoveMember``), and which managers count as reachable for both.

Pure functions: the caller reads the managers and the view (``leadership.ManagerView``) and
raises what they return. SWARM-BEHAVIOUR-2.md §7.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

LEAVE_LOCKED = (
    "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message."
)
LEAVE_MANAGER = (
    "You are attempting to leave the swarm on a node that is participating as a manager. "
)
LEAVE_LAST_MANAGER = (
    "Removing the last manager erases all current state of the swarm. Use `--force` to ignore"
    " this message. "
)
LEAVE_LOSS_OF_QUORUM = (
    "Removing this node leaves {left} managers out of {total}. Without a Raft quorum your swarm"
    " will be inaccessible. "
)
LEAVE_NOT_ACTIVE = "Doing so may lose the consensus of your cluster. "
LEAVE_RESTORE = (
    "The only way to restore a swarm that has lost consensus is to reinitialize it with"
    " `--force-new-cluster`. Use `--force` to suppress this message."
)
DEMOTE_LAST_MANAGER = "attempting to demote the last manager of the swarm"
DEMOTE_LOSS_OF_QUORUM = "can't remove member from the raft: this would result in a loss of quorum"


@dataclass(frozen=True)
class ManagerCounts:
    """moby's ``managerStats``: the managers reachable and unreachable, and whether this
    node is one of the reachable ones."""

    reachable: int
    unreachable: int
    self_reachable: bool


def manager_counts(
    managers: Collection[str], reachable: Collection[str], node_id: str
) -> ManagerCounts:
    """Count ``managers`` (the node IDs of the raft's members: nodes with a manager status)
    by whether ``reachable`` holds them."""
    up = [m for m in managers if m in reachable]
    return ManagerCounts(len(up), len(managers) - len(up), node_id in up)


def leave_refusal(
    reachable: int,
    unreachable: int,
    active: bool,
    locked: bool,
    *,
    manager: bool = True,
    self_reachable: bool = True,
) -> str | None:
    """Why ``docker swarm leave`` without ``--force`` is refused, or None (a worker).

    ``active``: the node is an active manager (moby's ``IsActiveManager``: it reaches the
    swarm's store); ``reachable``/``unreachable``: the managers counted by
    ``manager_counts``; ``self_reachable``: this node is one of the reachable ones (False
    also when the counts could not be read: Swarm then leaves the quorum out of its words).
    Every manager is refused, even when the quorum is safe; moby answers with 503
    (``notAvailableError``), the locked swarm included.
    """
    if locked:
        return LEAVE_LOCKED
    if not manager:
        return None
    message = LEAVE_MANAGER
    if not active:
        message += LEAVE_NOT_ACTIVE
    elif self_reachable and reachable - 2 <= unreachable:  # removingManagerCausesLossOfQuorum
        if reachable == 1 and unreachable == 0:  # isLastManager
            return message + LEAVE_LAST_MANAGER
        message += LEAVE_LOSS_OF_QUORUM.format(left=reachable - 1, total=reachable + unreachable)
    return message + LEAVE_RESTORE


def demote_refusal(
    node_id: str, managers: Collection[str], members: Collection[str], reachable: Collection[str]
) -> str | None:
    """Why demoting ``node_id`` is refused, or None: it is the last manager (``managers``:
    every node with the manager role), or the managers reachable without it (among
    ``members``, the nodes with a manager status) would be no majority of the members
    left (SwarmKit's ``CanRemoveMember``). Both are FailedPrecondition: 400 through
    moby. A node that is no member yet (promoted, not yet a manager) has no quorum to keep.
    """
    if list(managers) == [node_id]:
        return DEMOTE_LAST_MANAGER
    if node_id in members and not can_remove_member(node_id, members, reachable):
        return DEMOTE_LOSS_OF_QUORUM
    return None


def can_remove_member(node_id: str, members: Collection[str], reachable: Collection[str]) -> bool:
    """Whether the reachable members left once ``node_id`` goes are a majority of the members
    left (SwarmKit's ``(len(members)-1)/2 + 1``)."""
    left_reachable = sum(1 for m in members if m != node_id and m in reachable)
    return left_reachable >= (len(members) - 1) // 2 + 1
