"""Properties of ``schedule`` over generated clusters (Hypothesis)."""

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmlet.manager.scheduler.nodeinfo import node_infos
from swarmlet.manager.scheduler.pipeline import DEFAULT_PIPELINE
from swarmlet.manager.scheduler.placement import schedule
from swarmlet.models import Node, NodeAvailability, NodeState, Task, TaskState
from tests.manager.scheduler.builders import CPU, node, spec, task

SERVICES = ["web", "db", "cache"]
K = TypeVar("K", bound=Hashable)


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


# Batched placement (a group of identical tasks over precomputed loads) and preferences.


def given_last_least_loaded(
    counts: Mapping[K, int], receivers: set[K], eligible: Sequence[K]
) -> None:
    """Spread's guarantee for a group: a node (or branch) that was given a task ends at most
    one above the least loaded eligible one — it was the least loaded when it got its last."""
    if not receivers:
        return
    least = min(counts.get(e, 0) for e in eligible)
    assert max(counts.get(r, 0) for r in receivers) <= least + 1


@st.composite
def static_workloads(draw: st.DrawFn) -> tuple[list[Node], list[Task], list[Task]]:
    """Services whose only filters are static (no reservations, no max replicas), some of
    their tasks already placed and running."""
    cluster = draw(nodes())
    specs = {
        service: spec(
            constraints=draw(
                st.sampled_from([[], ["node.labels.zone==east"], ["node.labels.zone!=west"]])
            )
        )
        for service in SERVICES
    }
    pending = [
        task(f"p{i}", draw(st.sampled_from(SERVICES)))
        for i in range(draw(st.integers(min_value=0, max_value=40)))
    ]
    pending = [t.replace(spec=specs[t.service_id]) for t in pending]
    placed = [
        task(
            f"r{i}",
            service,
            node_id=draw(st.sampled_from([n.id for n in cluster])),
            state=TaskState.RUNNING,
            task_spec=specs[service],
        )
        for i, service in enumerate(
            draw(st.lists(st.sampled_from(SERVICES), max_size=10)) if cluster else []
        )
    ]
    return cluster, pending, placed


@settings(max_examples=300, deadline=None)
@given(static_workloads())
def test_each_service_spreads_over_its_eligible_nodes_as_one_by_one(workload):
    all_nodes, pending, placed = workload
    decisions = schedule(pending, all_nodes, placed)
    by_id = {t.id: t for t in pending}
    for service in SERVICES:
        mine = [t for t in pending if t.service_id == service]
        if not mine:
            continue
        checks = DEFAULT_PIPELINE.checks_for(mine[0])
        infos = node_infos(all_nodes, [])
        eligible = [n.id for n in all_nodes if checks.passes(infos[n.id])]
        mine_decided = [d for d in decisions if by_id[d.task_id].service_id == service]
        # With only static filters, a task is left without a node only when none is eligible.
        assert all(d.placed for d in mine_decided) == bool(eligible)
        if not eligible:
            continue
        counts = Counter(t.node_id for t in placed if t.service_id == service)
        counts.update(d.node_id for d in mine_decided)
        receivers = {d.node_id for d in mine_decided if d.node_id is not None}
        assert receivers <= set(eligible)
        given_last_least_loaded(counts, receivers, eligible)
        if not any(t.service_id == service for t in placed):
            per_node = [counts.get(e, 0) for e in eligible]
            assert max(per_node) - min(per_node) <= 1


@st.composite
def zoned_workloads(draw: st.DrawFn) -> tuple[list[Node], list[Task], list[Task]]:
    """Ready, active nodes in zones of any size (some without a zone) and racks; one service
    spread over zones (then racks), some of its tasks already running."""
    count = draw(st.integers(min_value=1, max_value=10))
    cluster = [
        node(
            f"n{i}",
            labels={
                key: value
                for key, value in (
                    ("zone", draw(st.sampled_from(["", "east", "west", "north"]))),
                    ("rack", draw(st.sampled_from(["", "r1", "r2"]))),
                )
                if value
            },
        )
        for i in range(count)
    ]
    spread = draw(st.sampled_from([["node.labels.zone"], ["node.labels.zone", "node.labels.rack"]]))
    preferring = spec(spread=spread)
    pending = [
        task(f"p{i}", "web", task_spec=preferring)
        for i in range(draw(st.integers(min_value=0, max_value=40)))
    ]
    placed = [
        task(f"r{i}", "web", node_id=n, state=TaskState.RUNNING, task_spec=preferring)
        for i, n in enumerate(draw(st.lists(st.sampled_from([n.id for n in cluster]), max_size=8)))
    ]
    return cluster, pending, placed


@settings(max_examples=300, deadline=None)
@given(zoned_workloads())
def test_a_spread_preference_evens_out_the_zones_then_the_nodes_within(workload):
    all_nodes, pending, placed = workload
    decisions = schedule(pending, all_nodes, placed)
    assert all(d.placed for d in decisions)
    labels = [
        p.spread["SpreadDescriptor"].removeprefix("node.labels.")
        for p in (pending[0].spec.placement.preferences if pending else [])
    ]
    # Each node's path down the tree: its value of each label, then the node itself.
    path = {n.id: (*(n.spec.labels.get(label, "") for label in labels), n.id) for n in all_nodes}
    new = [d.node_id for d in decisions if d.node_id is not None]
    old = [t.node_id for t in placed if t.node_id is not None]
    # At every level, among the branches under one parent: zones, racks within a zone, nodes
    # within a rack.
    for level in range(len(labels) + 1):
        for parent in {key[:level] for key in path.values()}:
            under = {n: key[: level + 1] for n, key in path.items() if key[:level] == parent}
            counts = Counter(under[n] for n in old + new if n in under)
            receivers = {under[n] for n in new if n in under}
            given_last_least_loaded(counts, receivers, sorted(set(under.values())))
    if not placed and labels:
        zones = Counter(path[n][0] for n in new)
        per_zone = [zones.get(zone, 0) for zone in {key[0] for key in path.values()}]
        assert max(per_zone) - min(per_zone) <= 1
