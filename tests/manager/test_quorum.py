"""The quorum refusals, word for word as moby and SwarmKit give them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmlet.manager.quorum import (
    ManagerCounts,
    can_remove_member,
    demote_refusal,
    leave_refusal,
    manager_counts,
)

MANAGER = "You are attempting to leave the swarm on a node that is participating as a manager. "
RESTORE = (
    "The only way to restore a swarm that has lost consensus is to reinitialize it with "
    "`--force-new-cluster`. Use `--force` to suppress this message."
)


def test_leaving_the_last_manager_erases_the_swarm():
    assert leave_refusal(1, 0, active=True, locked=False) == (
        MANAGER + "Removing the last manager erases all current state of the swarm. "
        "Use `--force` to ignore this message. "
    )


@pytest.mark.parametrize(
    ("reachable", "unreachable", "left", "total"),
    [(2, 0, 1, 2), (2, 1, 1, 3), (3, 1, 2, 4), (3, 2, 2, 5), (1, 2, 0, 3)],
)
def test_leaving_that_loses_the_quorum_says_how_many_are_left(reachable, unreachable, left, total):
    assert leave_refusal(reachable, unreachable, active=True, locked=False) == (
        MANAGER + f"Removing this node leaves {left} managers out of {total}. Without a Raft "
        "quorum your swarm will be inaccessible. " + RESTORE
    )


@pytest.mark.parametrize(("reachable", "unreachable"), [(3, 0), (4, 1), (5, 2)])
def test_leaving_is_refused_even_when_the_quorum_is_safe(reachable, unreachable):
    assert leave_refusal(reachable, unreachable, active=True, locked=False) == MANAGER + RESTORE


def test_a_manager_that_is_not_active_may_lose_the_consensus():
    assert leave_refusal(0, 0, active=False, locked=False) == (
        MANAGER + "Doing so may lose the consensus of your cluster. " + RESTORE
    )


def test_without_its_own_reachability_the_counts_are_left_out():
    # moby's managerStats failed, or this node is not among the reachable managers.
    assert leave_refusal(1, 0, active=True, locked=False, self_reachable=False) == (
        MANAGER + RESTORE
    )


def test_a_locked_swarm_asks_to_unlock_first():
    assert leave_refusal(3, 0, active=False, locked=True) == (
        "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore "
        "this message."
    )


def test_a_worker_leaves():
    assert leave_refusal(0, 0, active=False, locked=False, manager=False) is None


def test_manager_counts_count_the_members_by_the_view():
    counts = manager_counts(["a", "b", "c"], {"a", "c", "w"}, "a")
    assert counts == ManagerCounts(reachable=2, unreachable=1, self_reachable=True)
    assert not manager_counts(["a", "b"], {"a"}, "b").self_reachable


def test_the_last_manager_is_not_demoted():
    assert demote_refusal("a", ["a"], ["a"], {"a"}) == (
        "attempting to demote the last manager of the swarm"
    )


@pytest.mark.parametrize(
    ("node", "members", "reachable", "refused"),
    [
        ("a", "ab", "ab", False),  # one of two left, and reachable
        ("a", "abc", "abc", False),
        ("a", "abc", "ab", True),  # only b reachable after: not 2 of 3
        ("c", "abc", "ab", False),  # the unreachable one goes, a and b hold
        ("a", "abcd", "abc", False),
        ("a", "abcd", "ab", True),
        ("a", "abcde", "abcd", False),
        ("a", "abcde", "abc", True),  # 2 of the 4 left: not a majority
    ],
)
def test_demoting_refuses_a_loss_of_quorum(node, members, reachable, refused):
    refusal = demote_refusal(node, list(members), list(members), set(reachable))
    expected = "can't remove member from the raft: this would result in a loss of quorum"
    assert refusal == (expected if refused else None)


def test_a_manager_not_yet_a_member_has_no_quorum_to_keep():
    assert demote_refusal("new", ["a", "b", "new"], ["a", "b"], {"a"}) is None


@given(st.integers(1, 9), st.integers(0, 9))
def test_a_removal_keeps_a_majority_of_the_members_left_reachable(total, down):
    # Members 0..total-1, the first `down` of them unreachable; remove the last one.
    members = [str(i) for i in range(total)]
    reachable = set(members[min(down, total) :])
    removed = members[-1]
    left = [m for m in members if m != removed]
    allowed = can_remove_member(removed, members, reachable)
    left_up = sum(1 for m in left if m in reachable)
    assert allowed == (left_up > len(left) // 2)
