from collections import Counter

from swarmlet.manager.scheduler.placement import Decision, schedule
from swarmlet.models import NodeAvailability, NodeState, TaskState
from tests.manager.scheduler.builders import CPU, GB, node, spec, task, tasks


def placed_on(decisions: list[Decision]) -> Counter[str]:
    return Counter(d.node_id for d in decisions if d.node_id is not None)


def errors(decisions: list[Decision]) -> set[str | None]:
    return {d.error for d in decisions if not d.placed}


# Spread


def test_ten_tasks_spread_over_three_nodes_four_three_three():
    nodes = [node("a"), node("b"), node("c")]
    decisions = schedule(tasks(10), nodes, [])
    assert len(decisions) == 10
    assert all(d.placed and d.error is None for d in decisions)
    assert sorted(placed_on(decisions).values()) == [3, 3, 4]


def test_spread_counts_the_services_tasks_already_placed():
    nodes = [node("a"), node("b"), node("c")]
    placed = [
        task("old1", node_id="a", state=TaskState.RUNNING),
        task("old2", node_id="a", state=TaskState.RUNNING),
        task("old3", node_id="b", state=TaskState.RUNNING),
        # Terminal tasks do not count.
        task("dead1", node_id="c", state=TaskState.FAILED),
        task("dead2", node_id="c", state=TaskState.SHUTDOWN),
    ]
    decisions = schedule(tasks(3), nodes, placed)
    assert placed_on(decisions) == {"c": 2, "b": 1}


def test_ties_on_the_service_are_broken_by_all_tasks_on_the_node():
    nodes = [node("a"), node("b"), node("c")]
    placed = [
        task("other1", "db", node_id="a", state=TaskState.RUNNING),
        task("other2", "db", node_id="b", state=TaskState.RUNNING),
    ]
    decisions = schedule(tasks(1), nodes, placed)
    assert placed_on(decisions) == {"c": 1}


def test_two_services_spread_over_the_same_nodes():
    nodes = [node("a"), node("b")]
    pending = tasks(3, "web") + tasks(3, "db")
    decisions = schedule(pending, nodes, [])
    assert sorted(placed_on(decisions).values()) == [3, 3]


def test_decisions_are_replayable_and_ties_depend_on_the_task():
    nodes = [node("a"), node("b"), node("c")]
    pending = tasks(7)
    assert schedule(pending, nodes, []) == schedule(pending, nodes, [])
    chosen = {schedule([task(f"t{i}")], nodes, [])[0].node_id for i in range(50)}
    assert chosen == {"a", "b", "c"}


def test_tasks_of_an_older_spec_version_are_placed_too():
    nodes = [node("a"), node("b")]
    pending = [task("v1", spec_version=1), task("v2", spec_version=2)]
    decisions = schedule(pending, nodes, [])
    assert placed_on(decisions) == {"a": 1, "b": 1}


# Filters at work


def test_only_available_nodes_are_used():
    nodes = [
        node("down", state=NodeState.DOWN),
        node("drained", availability=NodeAvailability.DRAIN),
        node("up"),
    ]
    assert placed_on(schedule(tasks(4), nodes, [])) == {"up": 4}


def test_no_available_node_is_explained():
    nodes = [
        node("down", state=NodeState.DOWN),
        node("paused", availability=NodeAvailability.PAUSE),
    ]
    decisions = schedule(tasks(2), nodes, [])
    assert errors(decisions) == {"no suitable node (2 nodes not available for new tasks)"}


def test_no_nodes_at_all():
    decisions = schedule(tasks(2), [], [])
    assert [d.error for d in decisions] == ["no suitable node", "no suitable node"]


def test_constraints_pick_the_nodes():
    nodes = [node("a", labels={"zone": "east"}), node("b"), node("c", labels={"zone": "east"})]
    constrained = spec(constraints=["node.labels.zone==east"])
    decisions = schedule(tasks(4, task_spec=constrained), nodes, [])
    assert placed_on(decisions) == {"a": 2, "c": 2}


def test_unsatisfiable_constraints_are_explained():
    nodes = [node("a"), node("b"), node("c")]
    constrained = spec(constraints=["node.labels.zone==east"])
    decisions = schedule(tasks(2, task_spec=constrained), nodes, [])
    assert errors(decisions) == {
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    }


def test_max_replicas_per_node():
    nodes = [node("a"), node("b"), node("c")]
    one_per_node = spec(max_replicas=1)
    decisions = schedule(tasks(5, task_spec=one_per_node), nodes, [])
    assert placed_on(decisions) == {"a": 1, "b": 1, "c": 1}
    assert errors(decisions) == {"no suitable node (max replicas per node limit exceed)"}
    assert sum(not d.placed for d in decisions) == 2


def test_max_replicas_counts_tasks_already_placed():
    nodes = [node("a"), node("b")]
    placed = [task("old", node_id="a", state=TaskState.RUNNING)]
    decisions = schedule(tasks(2, task_spec=spec(max_replicas=1)), nodes, placed)
    assert placed_on(decisions) == {"b": 1}
    assert sum(not d.placed for d in decisions) == 1


def test_max_replicas_with_unavailable_nodes_explains_both():
    nodes = [
        node("a"),
        node("d1", state=NodeState.DOWN),
        node("d2", state=NodeState.DOWN),
        node("d3", availability=NodeAvailability.DRAIN),
    ]
    decisions = schedule(tasks(2, task_spec=spec(max_replicas=1)), nodes, [])
    assert errors(decisions) == {
        "no suitable node (3 nodes not available for new tasks; max replicas per node limit exceed)"
    }


def test_resources_are_reserved_as_tasks_are_placed():
    nodes = [node("a", cpus=2 * CPU, memory=8 * GB), node("b", cpus=1 * CPU, memory=8 * GB)]
    one_cpu = spec(cpus=1 * CPU)
    decisions = schedule(tasks(4, task_spec=one_cpu), nodes, [])
    assert placed_on(decisions) == {"a": 2, "b": 1}
    assert errors(decisions) == {"no suitable node (insufficient resources on 2 nodes)"}


def test_resources_held_by_placed_tasks_until_they_end():
    nodes = [node("a", memory=4 * GB)]
    big = spec(memory=3 * GB)
    running = task("r", node_id="a", state=TaskState.RUNNING, task_spec=big)
    assert errors(schedule(tasks(1, task_spec=big), nodes, [running])) == {
        "no suitable node (insufficient resources on 1 node)"
    }
    ended = running.replace(status=running.status.replace(state=TaskState.COMPLETE))
    assert placed_on(schedule(tasks(1, task_spec=big), nodes, [ended])) == {"a": 1}


def test_mixed_failures_are_explained_most_first():
    nodes = [
        node("down", state=NodeState.DOWN),
        node("small1", cpus=1 * CPU),
        node("small2", cpus=1 * CPU),
        node("west", labels={"zone": "west"}),
    ]
    demanding = spec(cpus=2 * CPU, constraints=["node.labels.zone==east"])
    decisions = schedule(tasks(1, task_spec=demanding), nodes, [])
    assert decisions[0].error == (
        "no suitable node (insufficient resources on 2 nodes;"
        " 1 node not available for new tasks; scheduling constraints not satisfied on 1 node)"
    )


# Tasks whose node is preset (global services)


def test_a_preset_task_is_only_checked_against_its_node():
    nodes = [node("a"), node("b", state=NodeState.DOWN)]
    decisions = schedule([task("g1", node_id="a"), task("g2", node_id="b")], nodes, [])
    assert decisions == [
        Decision("g1", "a", None),
        # SwarmKit's words for a preset node: the bare explanation.
        Decision("g2", None, "1 node not available for new tasks"),
    ]


def test_a_preset_task_on_an_unknown_node_gets_no_decision():
    assert schedule([task("g", node_id="gone")], [node("a")], []) == []


def test_preset_tasks_are_decided_first_and_take_their_resources():
    nodes = [node("a", cpus=2 * CPU), node("b", cpus=1 * CPU)]
    one_cpu = spec(cpus=1 * CPU)
    pending = [
        task("free1", "web", task_spec=one_cpu),
        task("global-a", "agent", node_id="a", task_spec=one_cpu),
        task("global-b", "agent", node_id="b", task_spec=one_cpu),
        task("free2", "web", task_spec=one_cpu),
    ]
    decisions = schedule(pending, nodes, [])
    assert [d.task_id for d in decisions] == ["global-a", "global-b", "free1", "free2"]
    assert decisions[0] == Decision("global-a", "a", None)
    assert decisions[1] == Decision("global-b", "b", None)
    assert decisions[2] == Decision("free1", "a", None)
    assert decisions[3].error == "no suitable node (insufficient resources on 2 nodes)"


def test_a_preset_task_respects_max_replicas_and_constraints():
    nodes = [node("a")]
    placed = [task("old", node_id="a", state=TaskState.RUNNING)]
    capped = task("g", node_id="a", task_spec=spec(max_replicas=1))
    assert schedule([capped], nodes, placed)[0].error == "max replicas per node limit exceed"
    constrained = task("g", node_id="a", task_spec=spec(constraints=["node.role==manager"]))
    assert schedule([constrained], nodes, [])[0].error == (
        "scheduling constraints not satisfied on 1 node"
    )
