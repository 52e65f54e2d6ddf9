"""The task reaper's pure decisions, on plain objects."""

from __future__ import annotations

from swarmlet.manager.orchestrator import reap
from swarmlet.models import RestartCondition, TaskState
from tests.manager.orchestrator.builders import restart_policy, service, service_spec, task

NODES = {"n1", "n2"}


def test_each_slot_keeps_five_tasks_the_oldest_history_goes():
    svc = service(service_spec(replicas=2))
    history = [
        task(svc, 1, node_id="n1", state=TaskState.FAILED, desired=TaskState.SHUTDOWN, created=i)
        for i in range(7)
    ]
    running = task(svc, 1, node_id="n1", created=10)
    other = task(svc, 2, node_id="n2")
    doomed = reap(svc, [*history, running, other], NODES, 5)
    # 8 tasks in slot 1, at most 5 kept: the 3 oldest go.
    assert [t.id for t in doomed] == [t.id for t in history[:3]]


def test_current_and_running_tasks_are_never_history():
    svc = service(service_spec(replicas=1))
    tasks = [
        task(svc, 1, node_id="n1", desired=TaskState.SHUTDOWN, created=0),  # still running
        task(svc, 1, node_id="n1", state=TaskState.FAILED, desired=TaskState.SHUTDOWN, created=1),
        task(svc, 1, node_id="n1", created=2),
    ]
    doomed = reap(svc, tasks, NODES, 1)
    assert [t.id for t in doomed] == [tasks[1].id]


def test_a_stopped_slot_keeps_its_newest_task():
    svc = service(service_spec(replicas=1, restart=restart_policy(RestartCondition.NONE)))
    tasks = [
        task(svc, 1, node_id="n1", state=TaskState.FAILED, desired=TaskState.SHUTDOWN, created=i)
        for i in range(3)
    ]
    doomed = reap(svc, tasks, NODES, 0)
    assert [t.id for t in doomed] == [tasks[0].id, tasks[1].id]


def test_global_history_is_kept_per_node():
    svc = service(service_spec(is_global=True))
    ended = [
        task(svc, node_id=n, state=TaskState.FAILED, desired=TaskState.SHUTDOWN, created=i)
        for i in range(3)
        for n in ("n1", "n2")
    ]
    running = [task(svc, node_id=n, created=9) for n in ("n1", "n2")]
    doomed = reap(svc, [*ended, *running], NODES, 2)
    assert len(doomed) == 4
    assert {t.node_id for t in doomed} == {"n1", "n2"}


def test_removed_tasks_go_once_they_ended_or_never_ran():
    svc = service(service_spec(replicas=1))
    ended = task(svc, 2, node_id="n1", state=TaskState.SHUTDOWN, desired=TaskState.REMOVE)
    unassigned = task(svc, 3, state=TaskState.PENDING, desired=TaskState.REMOVE)
    orphan = task(svc, 4, node_id="gone", desired=TaskState.REMOVE)
    still_running = task(svc, 5, node_id="n1", desired=TaskState.REMOVE)
    doomed = reap(svc, [ended, unassigned, orphan, still_running], NODES)
    assert {t.id for t in doomed} == {ended.id, unassigned.id, orphan.id}


def test_tasks_of_a_deleted_service_go_once_they_ended_or_never_ran():
    svc = service(service_spec(replicas=1))
    ended = task(svc, 1, node_id="n1", state=TaskState.SHUTDOWN)
    unassigned = task(svc, 2, state=TaskState.PENDING)
    running = task(svc, 3, node_id="n1")
    doomed = reap(None, [ended, unassigned, running], NODES)
    assert {t.id for t in doomed} == {ended.id, unassigned.id}


def test_a_negative_limit_keeps_all_history():
    svc = service(service_spec(replicas=1))
    tasks = [
        task(svc, 1, node_id="n1", state=TaskState.FAILED, desired=TaskState.SHUTDOWN, created=i)
        for i in range(9)
    ]
    assert reap(svc, tasks, NODES, -1) == []
