"""Placement preferences (``--placement-pref spread=...``) in ``schedule``."""

from collections import Counter

from swarmlet.manager.scheduler.placement import Decision, schedule
from swarmlet.models import Node, NodeState, TaskState
from tests.manager.scheduler.builders import node, spec, task, tasks

ZONE = "node.labels.zone"


def placed_on(decisions: list[Decision]) -> Counter[str]:
    return Counter(d.node_id for d in decisions if d.node_id is not None)


def by_label(decisions: list[Decision], nodes: list[Node], label: str) -> Counter[str]:
    labels = {n.id: n.spec.labels.get(label, "") for n in nodes}
    return Counter(labels[d.node_id] for d in decisions if d.node_id is not None)


def test_zones_get_equal_shares_whatever_their_size():
    nodes = [node("e1", labels={"zone": "east"})] + [
        node(f"w{i}", labels={"zone": "west"}) for i in range(3)
    ]
    decisions = schedule(tasks(8, task_spec=spec(spread=[ZONE])), nodes, [])
    assert all(d.placed for d in decisions)
    assert by_label(decisions, nodes, "zone") == {"east": 4, "west": 4}
    # Within a zone, the usual spread.
    assert sorted(placed_on(decisions).values()) == [1, 1, 2, 4]


def test_nodes_without_the_label_share_one_branch():
    nodes = [
        node("e", labels={"zone": "east"}),
        node("w", labels={"zone": "west"}),
        node("x1"),
        node("x2"),
    ]
    decisions = schedule(tasks(6, task_spec=spec(spread=[ZONE])), nodes, [])
    assert by_label(decisions, nodes, "zone") == {"east": 2, "west": 2, "": 2}
    assert placed_on(decisions)["x1"] == placed_on(decisions)["x2"] == 1


def test_tasks_already_in_a_zone_count_even_on_nodes_that_cannot_take_more():
    nodes = [
        node("e1", labels={"zone": "east"}),
        node("e2", labels={"zone": "east"}, state=NodeState.DOWN),
        node("w1", labels={"zone": "west"}),
    ]
    placed = [task("old", node_id="e2", state=TaskState.RUNNING, task_spec=spec(spread=[ZONE]))]
    decisions = schedule(tasks(3, task_spec=spec(spread=[ZONE])), nodes, placed)
    assert placed_on(decisions) == {"w1": 2, "e1": 1}


def test_a_zone_without_room_leaves_its_share_to_the_others():
    nodes = [node("e1", labels={"zone": "east"})] + [
        node(f"w{i}", labels={"zone": "west"}) for i in range(3)
    ]
    one_per_node = spec(spread=[ZONE], max_replicas=1)
    decisions = schedule(tasks(5, task_spec=one_per_node), nodes, [])
    assert by_label(decisions, nodes, "zone") == {"east": 1, "west": 3}
    assert {d.error for d in decisions if not d.placed} == {
        "no suitable node (max replicas per node limit exceed)"
    }


def test_constraints_still_pick_the_nodes_and_explain_the_rest():
    nodes = [
        node("e1", labels={"zone": "east", "disk": "ssd"}),
        node("e2", labels={"zone": "east"}),
        node("w1", labels={"zone": "west"}),
    ]
    ssd = spec(spread=[ZONE], constraints=["node.labels.disk==ssd"])
    assert placed_on(schedule(tasks(3, task_spec=ssd), nodes, [])) == {"e1": 3}
    nvme = spec(spread=[ZONE], constraints=["node.labels.disk==nvme"])
    decisions = schedule(tasks(2, task_spec=nvme), nodes, [])
    assert {d.error for d in decisions} == {
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    }


def test_preferences_nest_outermost_first():
    nodes = [
        node("e-r1-a", labels={"zone": "east", "rack": "r1"}),
        node("e-r1-b", labels={"zone": "east", "rack": "r1"}),
        node("e-r2", labels={"zone": "east", "rack": "r2"}),
        node("w-r1", labels={"zone": "west", "rack": "r1"}),
    ]
    decisions = schedule(tasks(8, task_spec=spec(spread=[ZONE, "node.labels.rack"])), nodes, [])
    # 4 per zone; in east, 2 per rack; in rack r1 of east, 1 per node.
    assert placed_on(decisions) == {"w-r1": 4, "e-r2": 2, "e-r1-a": 1, "e-r1-b": 1}


def test_engine_labels_and_the_prefix_in_any_case():
    nodes = [
        node("a", engine_labels={"storage": "fast"}),
        node("b", engine_labels={"storage": "slow"}),
        node("c", engine_labels={"storage": "slow"}),
    ]
    for descriptor in ("engine.labels.storage", "Engine.Labels.storage"):
        decisions = schedule(tasks(4, task_spec=spec(spread=[descriptor])), nodes, [])
        assert placed_on(decisions) == {"a": 2, "b": 1, "c": 1}


def test_a_descriptor_swarm_does_not_know_is_ignored():
    nodes = [node("e", labels={"zone": "east"}), node("w1"), node("w2")]
    decisions = schedule(tasks(3, task_spec=spec(spread=["node.hostname"])), nodes, [])
    assert placed_on(decisions) == {"e": 1, "w1": 1, "w2": 1}


def test_placements_with_preferences_are_replayable():
    nodes = [node(f"n{i}", labels={"zone": f"z{i % 3}"}) for i in range(7)]
    pending = tasks(11, task_spec=spec(spread=[ZONE]))
    assert schedule(pending, nodes, []) == schedule(pending, nodes, [])


def test_new_tasks_even_out_the_zones_that_are_behind():
    # SwarmKit's quotas would give both new tasks to whichever empty zone it tried first.
    nodes = [node(z, labels={"zone": z}) for z in ("east", "west", "north")]
    running = spec(spread=[ZONE])
    placed = [
        task(f"old{i}", node_id="east", state=TaskState.RUNNING, task_spec=running)
        for i in range(10)
    ]
    decisions = schedule(tasks(2, task_spec=running), nodes, placed)
    assert placed_on(decisions) == {"west": 1, "north": 1}
