"""The replicated orchestrator's pure decisions, on plain objects."""

from __future__ import annotations

from collections import Counter

from swarmlet.manager.orchestrator import Memory, reconcile_replicated
from swarmlet.manager.orchestrator.plan import InstanceKey
from swarmlet.manager.orchestrator.replicated import surplus_slots
from swarmlet.models import (
    EndpointSpec,
    NetworkAttachmentConfig,
    NodeAvailability,
    NodeState,
    PortConfig,
    PublishMode,
    RestartCondition,
    Task,
    TaskState,
)
from tests.manager.orchestrator.builders import (
    START,
    apply,
    at,
    changed,
    current,
    node,
    nodes,
    restart_policy,
    service,
    service_spec,
    task,
)


def test_a_new_service_gets_one_pending_task_per_slot():
    svc = service(service_spec("web", replicas=3))
    plan = reconcile_replicated(svc, [], nodes("n1"), at(0))
    assert sorted(t.slot or 0 for t in plan.created) == [1, 2, 3]
    for t in plan.created:
        assert t.name == f"web.{t.slot}"
        assert t.service_id == svc.id
        assert t.service_name == "web"
        assert t.node_id is None
        assert t.spec == svc.spec.task_template
        assert t.spec_version == svc.spec_version
        # No network to be given an address on: the allocator would only move it to PENDING.
        assert t.status.state == TaskState.PENDING
        assert t.status.message == "pending task scheduling"
        assert t.status.timestamp == START
        assert t.desired_state == TaskState.RUNNING
    assert plan.updated == []
    assert plan.updated_service is None


def test_the_tasks_of_a_service_with_addresses_to_be_given_wait_in_new():
    """On a network of its own, or publishing on ingress: the allocator gives each task its
    address and moves it to PENDING. Published in host mode, there is nothing to give."""
    base = service_spec("web", replicas=1)
    on_network = base.replace(
        task_template=base.task_template.replace(networks=[NetworkAttachmentConfig(target="net1")])
    )
    ingress = base.replace(endpoint_spec=EndpointSpec(ports=[PortConfig(target_port=80)]))
    host = base.replace(
        endpoint_spec=EndpointSpec(
            ports=[PortConfig(target_port=80, published_port=80, publish_mode=PublishMode.HOST)]
        )
    )
    for spec, state, message in [
        (on_network, TaskState.NEW, "created"),
        (ingress, TaskState.NEW, "created"),
        (host, TaskState.PENDING, "pending task scheduling"),
    ]:
        [created] = reconcile_replicated(service(spec), [], nodes("n1"), at(0)).created
        assert (created.status.state, created.status.message) == (state, message)


def test_a_converged_service_needs_nothing():
    svc = service(service_spec(replicas=2))
    tasks = [task(svc, 1, node_id="n1"), task(svc, 2, node_id="n2")]
    plan = reconcile_replicated(svc, tasks, nodes("n1", "n2"), at(0))
    assert plan.ops() == []


def test_scaling_up_fills_the_missing_slots():
    svc = service(service_spec(replicas=10))
    tasks = [task(svc, slot, node_id="n1") for slot in (1, 2, 3)]
    plan = reconcile_replicated(svc, tasks, nodes("n1"), at(0))
    assert sorted(t.slot or 0 for t in plan.created) == list(range(4, 11))
    assert plan.updated == []


def test_scaling_up_after_down_reuses_the_lowest_free_slots():
    svc = service(service_spec(replicas=4))
    tasks = [task(svc, 2, node_id="n1"), task(svc, 5, node_id="n1")]
    plan = reconcile_replicated(svc, tasks, nodes("n1"), at(0))
    assert sorted(t.slot or 0 for t in plan.created) == [1, 3]


def test_scaling_down_removes_from_the_most_loaded_nodes_first():
    svc = service(service_spec(replicas=2))
    placement = {1: "n1", 2: "n1", 3: "n1", 4: "n2", 5: "n2", 6: "n3"}
    tasks = [task(svc, slot, node_id=n) for slot, n in placement.items()]
    history = task(svc, 1, node_id="n1", state=TaskState.FAILED, desired=TaskState.SHUTDOWN)
    plan = reconcile_replicated(svc, [*tasks, history], nodes("n1", "n2", "n3"), at(0))
    assert plan.created == []
    after = apply([*tasks, history], plan)
    # n1 had 3, n2 2, n3 1: slots go from the fullest node, ties from the highest slot.
    assert sorted(t.slot or 0 for t in current(after)) == [1, 4]
    for t in after:
        if t.slot not in (1, 4):
            assert t.desired_state == TaskState.REMOVE
    assert history.id not in {t.id for t in plan.updated}  # slot 1 stays with its history


def test_surplus_slots_prefers_unplaced_then_loaded_nodes_then_high_slots():
    svc = service()
    slots: dict[InstanceKey, list[Task]] = {
        1: [task(svc, 1, node_id="a")],
        2: [task(svc, 2, node_id="a")],
        3: [task(svc, 3, node_id="b")],
        4: [task(svc, 4, state=TaskState.PENDING)],
        5: [task(svc, 5, node_id="b")],
    }
    assert surplus_slots(slots, 1) == [4]
    assert surplus_slots(slots, 2) == [4, 5]
    assert surplus_slots(slots, 3) == [4, 5, 2]
    counts = Counter(slots[s][0].node_id for s in slots if s not in surplus_slots(slots, 3))
    assert counts == {"a": 1, "b": 1}


def test_scale_to_zero_removes_every_slot():
    svc = service(service_spec(replicas=0))
    tasks = [task(svc, slot, node_id="n1") for slot in (1, 2)]
    plan = reconcile_replicated(svc, tasks, nodes("n1"), at(0))
    assert all(t.desired_state == TaskState.REMOVE for t in apply(tasks, plan))


def test_tasks_of_a_down_node_are_replaced_at_once_in_their_slot():
    svc = service(service_spec(replicas=2))
    tasks = [task(svc, 1, node_id="n1"), task(svc, 2, node_id="n2")]
    cluster = {"n1": node("n1", state=NodeState.DOWN), "n2": node("n2")}
    plan = reconcile_replicated(svc, tasks, cluster, at(0))
    [old] = plan.updated
    assert old.id == tasks[0].id
    assert old.desired_state == TaskState.SHUTDOWN
    [new] = plan.created
    assert new.slot == 1
    assert new.node_id is None
    assert new.desired_state == TaskState.RUNNING  # no restart delay for a failover


def test_tasks_of_a_drained_or_removed_node_are_replaced():
    svc = service(service_spec(replicas=2))
    tasks = [task(svc, 1, node_id="n1"), task(svc, 2, node_id="gone")]
    cluster = {"n1": node("n1", availability=NodeAvailability.DRAIN)}
    plan = reconcile_replicated(svc, tasks, cluster, at(0))
    assert {t.id for t in plan.updated} == {t.id for t in tasks}
    assert sorted(t.slot or 0 for t in plan.created) == [1, 2]


def test_a_paused_node_keeps_its_tasks():
    svc = service(service_spec(replicas=1))
    tasks = [task(svc, 1, node_id="n1")]
    cluster = {"n1": node("n1", availability=NodeAvailability.PAUSE)}
    assert reconcile_replicated(svc, tasks, cluster, at(0)).ops() == []


def test_nothing_moves_back_when_a_node_returns():
    svc = service(service_spec(replicas=1))
    old = task(svc, 1, node_id="n1", desired=TaskState.SHUTDOWN)  # still reported running
    new = task(svc, 1, node_id="n2")
    plan = reconcile_replicated(svc, [old, new], nodes("n1", "n2"), at(0))
    assert plan.ops() == []


def test_a_slot_that_stopped_for_good_stays_until_the_spec_changes():
    spec = service_spec(replicas=1, restart=restart_policy(RestartCondition.NONE))
    svc = service(spec)
    done = task(svc, 1, node_id="n1", state=TaskState.COMPLETE, desired=TaskState.SHUTDOWN)
    assert reconcile_replicated(svc, [done], nodes("n1"), at(0)).ops() == []

    newer = changed(
        svc, service_spec(replicas=1, image="nginx:2", restart=spec.task_template.restart_policy)
    )
    plan = reconcile_replicated(newer, [done], nodes("n1"), at(0))
    [rerun] = plan.created
    assert rerun.slot == 1
    assert rerun.spec.container_spec.image == "nginx:2"
    assert rerun.desired_state == TaskState.RUNNING


def test_removed_tasks_do_not_hold_their_slot():
    svc = service(service_spec(replicas=1))
    removed = task(svc, 1, node_id="n1", desired=TaskState.REMOVE)
    plan = reconcile_replicated(svc, [removed], nodes("n1"), at(0))
    [new] = plan.created
    assert new.slot == 1


def test_memory_is_kept_for_the_spec_version():
    svc = service(service_spec(replicas=1))
    plan = reconcile_replicated(svc, [], nodes("n1"), at(0), Memory(spec_version=0))
    assert plan.memory.spec_version == svc.spec_version.index
