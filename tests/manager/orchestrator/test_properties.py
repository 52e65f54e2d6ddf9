"""Properties of the pure decisions, over generated services, tasks and nodes."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmlet.manager.orchestrator import reconcile_replicated
from swarmlet.manager.orchestrator.plan import InstanceKey, is_current, is_live
from swarmlet.manager.orchestrator.replicated import surplus_slots
from swarmlet.models import NodeState, Task, TaskState
from tests.manager.orchestrator.builders import apply, at, node, service, service_spec, task

NODE_IDS = ["n1", "n2", "n3", None]
STATES = [TaskState.PENDING, TaskState.RUNNING, TaskState.FAILED, TaskState.COMPLETE]


def greedy(slots: dict[InstanceKey, str | None], count: int) -> list[InstanceKey]:
    """Scale-down by definition: one at a time, from the fullest node, highest slot first."""
    remaining = dict(slots)
    chosen = []
    for _ in range(count):
        load = Counter(remaining.values())
        weights = {s: (node_id is None, load[node_id], s) for s, node_id in remaining.items()}
        slot = max(remaining, key=weights.__getitem__)
        del remaining[slot]
        chosen.append(slot)
    return chosen


@given(
    placement=st.lists(st.sampled_from(NODE_IDS), min_size=1, max_size=30),
    data=st.data(),
)
def test_scale_down_takes_from_the_fullest_nodes(placement, data):
    svc = service()
    where = dict(enumerate(placement, start=1))
    slots: dict[InstanceKey, list[Task]] = {
        slot: [task(svc, slot, node_id=node_id)] for slot, node_id in where.items()
    }
    count = data.draw(st.integers(min_value=0, max_value=len(slots)))
    assert surplus_slots(slots, count) == greedy(dict(where), count)  # type: ignore[arg-type]


slot_task = st.tuples(
    st.integers(min_value=1, max_value=8),
    st.sampled_from(NODE_IDS),
    st.sampled_from(STATES),
)


@settings(max_examples=200)
@given(
    replicas=st.integers(min_value=0, max_value=8),
    spec=st.lists(slot_task, max_size=12, unique_by=lambda t: t[0]),
    down=st.sets(st.sampled_from(["n1", "n2", "n3"])),
)
def test_every_slot_ends_with_one_current_task(replicas, spec, down):
    svc = service(service_spec(replicas=replicas))
    tasks = [
        task(svc, slot, node_id=node_id if state != TaskState.PENDING else None, state=state)
        for slot, node_id, state in spec
    ]
    cluster = {
        n: node(n, state=NodeState.DOWN if n in down else NodeState.READY)
        for n in ("n1", "n2", "n3")
    }
    plan = reconcile_replicated(svc, tasks, cluster, at(0))
    after = apply(tasks, plan)
    live_slots = {t.slot for t in after if is_live(t)}
    assert len(live_slots) == replicas
    per_slot = Counter(t.slot for t in after if is_current(t))
    assert all(count == 1 for count in per_slot.values())
    # Every live slot has its one current task. A slot whose task ended on its own has its
    # replacement already, waiting in desired READY for the restart delay (5 s by default).
    assert set(per_slot) == live_slots
    ended = {slot for slot, _, state in spec if state in (TaskState.FAILED, TaskState.COMPLETE)}
    waiting = {t.slot for t in after if is_current(t) and t.desired_state == TaskState.READY}
    assert waiting == ended & live_slots
    assert plan.memory.restart_at == {}
    assert plan.wake_at == (5 if waiting else None)
    # Nothing current is left on a Down node.
    assert not [t for t in after if is_current(t) and t.node_id in down]
    # Every task the plan wrote kept its identity.
    assert {t.id for t in tasks} <= {t.id for t in after}

    # Once the delay has passed, the waiting replacements are told to run.
    later_plan = reconcile_replicated(svc, after, cluster, at(5), plan.memory)
    later = apply(after, later_plan)
    assert {t.slot for t in later if is_live(t)} == live_slots
    per_slot = Counter(t.slot for t in later if is_current(t))
    assert set(per_slot) == live_slots
    assert all(count == 1 for count in per_slot.values())
    assert later_plan.created == []
    started = {t.slot for t in later_plan.updated if t.desired_state == TaskState.RUNNING}
    assert started == waiting
    assert later_plan.memory.restart_at == {}
    assert not [t for t in later if is_current(t) and t.node_id in down]
    assert {t.id for t in after} <= {t.id for t in later}
