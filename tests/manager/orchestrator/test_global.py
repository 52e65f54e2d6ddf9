"""The global orchestrator's pure decisions, on plain objects."""

from __future__ import annotations

import pytest

from swarmlet.errors import InvalidSpec
from swarmlet.manager.orchestrator import reconcile_global
from swarmlet.models import NodeAvailability, NodeState, TaskState
from tests.manager.orchestrator.builders import at, node, nodes, service, service_spec, task


def test_one_task_per_node_with_the_node_preset():
    svc = service(service_spec("agent", is_global=True))
    plan = reconcile_global(svc, [], nodes("n1", "n2", "n3"), at(0))
    assert sorted(t.node_id or "" for t in plan.created) == ["n1", "n2", "n3"]
    for t in plan.created:
        assert t.name == f"agent.{t.node_id}"
        assert t.slot is None
        assert t.status.state == TaskState.PENDING
        assert t.status.message == "pending task scheduling"
        assert t.desired_state == TaskState.RUNNING


def test_nodes_that_take_no_tasks_get_none():
    svc = service(service_spec(is_global=True))
    cluster = {
        "down": node("down", state=NodeState.DOWN),
        "drained": node("drained", availability=NodeAvailability.DRAIN),
        "paused": node("paused", availability=NodeAvailability.PAUSE),
        "unknown": node("unknown", state=NodeState.UNKNOWN),
        "ok": node("ok"),
    }
    plan = reconcile_global(svc, [], cluster, at(0))
    assert sorted(t.node_id or "" for t in plan.created) == ["ok", "unknown"]


def test_constraints_choose_the_nodes():
    svc = service(service_spec(is_global=True, constraints=["node.labels.zone==east"]))
    cluster = {
        "e": node("e", labels={"zone": "east"}),
        "w": node("w", labels={"zone": "west"}),
        "none": node("none"),
    }
    plan = reconcile_global(svc, [], cluster, at(0))
    assert [t.node_id for t in plan.created] == ["e"]


def test_a_drained_or_down_node_has_its_task_shut_down():
    svc = service(service_spec(is_global=True))
    tasks = [task(svc, node_id=n) for n in ("a", "b", "c")]
    cluster = {
        "a": node("a", availability=NodeAvailability.DRAIN),
        "b": node("b", state=NodeState.DOWN),
        "c": node("c"),
    }
    plan = reconcile_global(svc, tasks, cluster, at(0))
    assert plan.created == []
    assert sorted(t.node_id or "" for t in plan.updated) == ["a", "b"]
    assert all(t.desired_state == TaskState.SHUTDOWN for t in plan.updated)


def test_a_paused_node_keeps_its_task():
    svc = service(service_spec(is_global=True))
    tasks = [task(svc, node_id="p")]
    cluster = {"p": node("p", availability=NodeAvailability.PAUSE)}
    assert reconcile_global(svc, tasks, cluster, at(0)).ops() == []


def test_a_node_that_no_longer_matches_has_its_task_shut_down():
    svc = service(service_spec(is_global=True, constraints=["node.labels.zone==east"]))
    tasks = [task(svc, node_id="n1")]
    cluster = {"n1": node("n1", labels={"zone": "west"})}
    plan = reconcile_global(svc, tasks, cluster, at(0))
    [stopped] = plan.updated
    assert stopped.desired_state == TaskState.SHUTDOWN


def test_the_tasks_of_a_removed_node_are_marked_remove():
    svc = service(service_spec(is_global=True))
    tasks = [
        task(svc, node_id="gone"),
        task(svc, node_id="gone", state=TaskState.FAILED, desired=TaskState.SHUTDOWN),
    ]
    plan = reconcile_global(svc, tasks, nodes("n1"), at(0))
    assert {t.id for t in plan.updated} == {t.id for t in tasks}
    assert all(t.desired_state == TaskState.REMOVE for t in plan.updated)
    assert [t.node_id for t in plan.created] == ["n1"]


def test_a_node_that_returns_gets_a_new_task():
    svc = service(service_spec(is_global=True))
    # Shut down when the node was drained; it stopped because it was asked to.
    old = task(svc, node_id="n1", state=TaskState.SHUTDOWN, desired=TaskState.SHUTDOWN)
    plan = reconcile_global(svc, [old], nodes("n1"), at(0))
    [new] = plan.created
    assert new.node_id == "n1"


def test_a_converged_service_needs_nothing():
    svc = service(service_spec(is_global=True))
    tasks = [task(svc, node_id=n) for n in ("n1", "n2")]
    assert reconcile_global(svc, tasks, nodes("n1", "n2"), at(0)).ops() == []


def test_bad_constraints_are_refused():
    svc = service(service_spec(is_global=True, constraints=["nonsense"]))
    with pytest.raises(InvalidSpec):
        reconcile_global(svc, [], nodes("n1"), at(0))
