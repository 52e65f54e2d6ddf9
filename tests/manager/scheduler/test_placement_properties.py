"""Properties of ``schedule`` over generated clusters (Hypothesis)."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmlet.manager.scheduler.nodeinfo import node_infos
from swarmlet.manager.scheduler.pipeline import DEFAULT_PIPELINE
from swarmlet.manager.scheduler.placement import schedule
from swarmlet.models import Node, NodeAvailability, NodeState, Task, TaskState
from tests.manager.scheduler.builders import CPU, node, spec, task

SERVICES = ["web", "db", "cache"]


@st.composite
def nodes(draw: st.DrawFn) -> list[Node]:
    count = draw(st.integers(min_value=0, max_value=8))
    return [
        node(
            f"n{i}",
            state=draw(st.sampled_from([NodeState.READY] * 3 + [NodeState.DOWN])),
            availability=draw(
                st.sampled_from([NodeAvailability.ACTIVE] * 3 + [NodeAvailability.DRAIN])
            ),
            labels=draw(st.sampled_from([{}, {"zone": "east"}, {"zone": "west"}])),
            cpus=draw(st.integers(min_value=0, max_value=4)) * CPU,
        )
        for i in range(count)
    ]


@st.composite
def workloads(draw: st.DrawFn, cluster: list[Node]) -> tuple[list[Task], list[Task]]:
    """Pending tasks of a few services (some preset) and tasks already placed."""
    specs = {
        service: spec(
            cpus=draw(st.integers(min_value=0, max_value=2)) * CPU,
            constraints=draw(
                st.sampled_from([[], ["node.labels.zone==east"], ["node.labels.zone!=west"]])
            ),
            max_replicas=draw(st.integers(min_value=0, max_value=3)),
        )
        for service in SERVICES
    }
    node_ids = [n.id for n in cluster]
    pending: list[Task] = []
    for i in range(draw(st.integers(min_value=0, max_value=25))):
        service = draw(st.sampled_from(SERVICES))
        preset = draw(st.sampled_from([None, *node_ids])) if node_ids else None
        pending.append(task(f"p{i}", service, node_id=preset, task_spec=specs[service]))
    placed: list[Task] = []
    for i in range(draw(st.integers(min_value=0, max_value=10)) if node_ids else 0):
        service = draw(st.sampled_from(SERVICES))
        placed.append(
            task(
                f"r{i}",
                service,
                node_id=draw(st.sampled_from(node_ids)),
                state=draw(st.sampled_from([TaskState.RUNNING, TaskState.FAILED])),
                task_spec=specs[service],
            )
        )
    return pending, placed


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[Node], list[Task], list[Task]]:
    cluster = draw(nodes())
    pending, placed = draw(workloads(cluster))
    return cluster, pending, placed


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_every_placement_passes_every_filter_when_it_is_made(cluster):
    all_nodes, pending, placed = cluster
    decisions = schedule(pending, all_nodes, placed)
    by_id = {t.id: t for t in pending}
    # Every pending task whose node (if preset) exists gets exactly one decision.
    known = {n.id for n in all_nodes}
    expected = {t.id for t in pending if t.node_id is None or t.node_id in known}
    assert sorted(d.task_id for d in decisions) == sorted(expected)

    # Replay the decisions in order against the same starting state.
    infos = node_infos(all_nodes, placed)
    for decision in decisions:
        pending_task = by_id[decision.task_id]
        checks = DEFAULT_PIPELINE.checks_for(pending_task)
        if decision.node_id is not None:
            assert decision.error is None
            if pending_task.node_id is not None:
                assert decision.node_id == pending_task.node_id
            assert checks.passes(infos[decision.node_id])
            infos[decision.node_id].add(pending_task)
        else:
            assert decision.error
    # A task left without a node really fits none, even now that everything is placed.
    for decision in decisions:
        if decision.node_id is None:
            pending_task = by_id[decision.task_id]
            candidates = [infos[pending_task.node_id]] if pending_task.node_id else infos.values()
            checks = DEFAULT_PIPELINE.checks_for(pending_task)
            assert not any(checks.passes(info) for info in candidates)
            if not pending_task.node_id:
                assert decision.error is not None
                assert decision.error.startswith("no suitable node")


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_no_node_gets_more_than_max_replicas(cluster):
    all_nodes, pending, _ = cluster
    decisions = schedule(pending, all_nodes, [])
    by_id = {t.id: t for t in pending}
    per_node_and_service = Counter(
        (d.node_id, by_id[d.task_id].service_id) for d in decisions if d.node_id is not None
    )
    for (_, service_id), count in per_node_and_service.items():
        placement = next(t.spec.placement for t in pending if t.service_id == service_id)
        if placement is not None and placement.max_replicas > 0:
            assert count <= placement.max_replicas


@settings(max_examples=300, deadline=None)
@given(
    node_count=st.integers(min_value=1, max_value=12),
    task_count=st.integers(min_value=0, max_value=60),
    seed=st.text(alphabet="abcdef0123456789", min_size=1, max_size=6),
)
def test_one_unconstrained_service_spreads_evenly(node_count, task_count, seed):
    all_nodes = [node(f"n{i}") for i in range(node_count)]
    pending = [task(f"{seed}-{i}") for i in range(task_count)]
    decisions = schedule(pending, all_nodes, [])
    assert all(d.placed for d in decisions)
    counts = Counter(d.node_id for d in decisions)
    per_node = [counts.get(n.id, 0) for n in all_nodes]
    assert max(per_node) - min(per_node) <= 1
