"""Generic resources in the scheduler: counted as SwarmKit's ResourceFilter counts them (free =
the node's minus what its active tasks were given), claimed on placement as its ``Claim`` does,
and released when a task ends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmlet.clock import FakeClock
from swarmlet.genericresource import discrete, named
from swarmlet.manager.scheduler import Decision, no_suitable_node, schedule
from swarmlet.manager.scheduler.scheduler import plan_updates
from swarmlet.models import (
    GenericResource,
    Node,
    ResourceRequirements,
    ResourceSpec,
    Task,
    TaskSpec,
    TaskState,
)
from tests.manager.scheduler import builders
from tests.manager.scheduler.builders import node, task, tasks


def with_generic(n: Node, *resources: GenericResource) -> Node:
    described = n.description.resources.replace(generic_resources=list(resources))
    return n.replace(description=n.description.replace(resources=described))


def reserving(*resources: GenericResource, cpus: int = 0) -> TaskSpec:
    reservation = ResourceSpec(nano_cpus=cpus, generic_resources=list(resources))
    return TaskSpec(resources=ResourceRequirements(reservations=reservation))


def sgx(count: int = 1) -> GenericResource:
    return discrete("sgx", count)


def cluster(sgx_on_node2: int = 1) -> list[Node]:
    return [node("node1"), with_generic(node("node2"), sgx(sgx_on_node2)), node("node3")]


def placed_on(decisions: Iterable[Decision]) -> Counter[str | None]:
    return Counter(decision.node_id for decision in decisions)


def test_one_sgx_on_node2_takes_one_task_and_the_other_is_explained() -> None:
    pending = tasks(2, task_spec=reserving(sgx(1)))
    decisions = schedule(pending, cluster(), [])
    assert placed_on(decisions) == Counter({"node2": 1, None: 1})
    (placed,) = [d for d in decisions if d.placed]
    assert placed.generic == [sgx(1)]
    (waiting,) = [d for d in decisions if not d.placed]
    # node1 and node3 have no sgx, node2's is taken: all three fail on resources, as in Swarm.
    assert waiting.error == "no suitable node (insufficient resources on 3 nodes)"
    assert waiting.generic is None


def test_a_count_is_claimed_from_a_discrete_resource() -> None:
    pending = tasks(3, task_spec=reserving(sgx(2)))
    decisions = schedule(pending, cluster(sgx_on_node2=5), [])
    assert placed_on(decisions) == Counter({"node2": 2, None: 1})
    assert [d.generic for d in decisions if d.placed] == [[sgx(2)], [sgx(2)]]


def test_named_resources_are_given_by_value_each_to_one_task() -> None:
    gpus = [named("gpu", value) for value in ("UUID1", "UUID2", "UUID3")]
    nodes = [with_generic(node("node1"), *gpus)]
    decisions = schedule(tasks(2, task_spec=reserving(discrete("gpu", 1))), nodes, [])
    assert [d.generic for d in decisions] == [[gpus[0]], [gpus[1]]]
    # A task already given UUID1 holds it: the next one gets what is left.
    holder = task("old", node_id="node1", state=TaskState.RUNNING)
    holder = holder.replace(
        spec=reserving(discrete("gpu", 2)), assigned_generic_resources=[gpus[0], gpus[2]]
    )
    (decision,) = schedule([task("new", task_spec=reserving(discrete("gpu", 1)))], nodes, [holder])
    assert decision.generic == [gpus[1]]


def test_what_active_tasks_were_given_is_not_free_until_they_end() -> None:
    holder = task("old", "other", node_id="node2", state=TaskState.RUNNING)
    holder = holder.replace(spec=reserving(sgx(1)), assigned_generic_resources=[sgx(1)])
    pending = [task("new", task_spec=reserving(sgx(1)))]
    (decision,) = schedule(pending, cluster(), [holder])
    assert decision.error == "no suitable node (insufficient resources on 3 nodes)"
    ended = holder.replace(status=holder.status.replace(state=TaskState.COMPLETE))
    (decision,) = schedule(pending, cluster(), [ended])
    assert decision.node_id == "node2"
    assert decision.generic == [sgx(1)]


def test_a_task_without_a_record_of_what_it_was_given_holds_what_it_reserves() -> None:
    holder = task("old", "other", node_id="node2", state=TaskState.RUNNING)
    holder = holder.replace(spec=reserving(sgx(1)))
    (decision,) = schedule([task("new", task_spec=reserving(sgx(1)))], cluster(), [holder])
    assert not decision.placed


def test_a_kind_no_node_has_and_a_named_reservation_fit_nowhere() -> None:
    (decision,) = schedule([task("t", task_spec=reserving(discrete("fpga", 1)))], cluster(), [])
    assert decision.error == "no suitable node (insufficient resources on 3 nodes)"
    # SwarmKit's API lets a named reservation through; its HasEnough then refuses every node.
    spec = reserving(named("sgx", "x"))
    (decision,) = schedule([task("t", task_spec=spec)], cluster(), [])
    assert decision.error == "no suitable node (insufficient resources on 3 nodes)"


def test_cpus_and_generic_resources_are_both_needed() -> None:
    nodes = [with_generic(node("node1", cpus=builders.CPU), sgx(4)), with_generic(node("node2"))]
    spec = reserving(sgx(1), cpus=2 * builders.CPU)
    (decision,) = schedule([task("t", task_spec=spec)], nodes, [])
    assert decision.error == "no suitable node (insufficient resources on 2 nodes)"


def test_a_preset_task_claims_on_its_node() -> None:
    spec = reserving(sgx(1))
    decisions = schedule(
        [task("g2", node_id="node2", task_spec=spec), task("g3", node_id="node3", task_spec=spec)],
        cluster(),
        [],
    )
    assert [(d.node_id, d.generic, d.error) for d in decisions] == [
        ("node2", [sgx(1)], None),
        (None, None, "insufficient resources on 1 node"),
    ]


def test_a_task_without_generic_resources_is_given_none() -> None:
    (decision,) = schedule([task("t")], cluster(), [])
    assert decision.placed
    assert decision.generic is None


def test_the_scheduler_writes_what_a_placed_task_was_given() -> None:
    clock = FakeClock()
    pending = tasks(2, task_spec=reserving(sgx(1)))
    decisions = schedule(pending, cluster(), [])
    ops = plan_updates({t.id: t for t in pending}, decisions, clock)
    written = {op.obj.id: op.obj for op in ops}
    assert all(isinstance(obj, Task) for obj in written.values())
    by_node = {t.node_id: t for t in written.values() if isinstance(t, Task)}
    assert by_node["node2"].assigned_generic_resources == [sgx(1)]
    assert by_node["node2"].to_api()["AssignedGenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "sgx", "Value": 1}}
    ]
    assert by_node[None].assigned_generic_resources is None


@st.composite
def sgx_workloads(draw: st.DrawFn) -> tuple[list[Node], list[Task]]:
    """Nodes with 0..3 sgx (or none advertised), and tasks of services reserving 0..2."""
    nodes = []
    for i in range(draw(st.integers(min_value=1, max_value=5))):
        count = draw(st.sampled_from([None, 0, 1, 2, 3]))
        plain = node(f"n{i}")
        nodes.append(plain if count is None else with_generic(plain, sgx(count)))
    specs = {svc: reserving(sgx(draw(st.integers(0, 2)))) for svc in ("a", "b", "c")}
    pending = [
        task(f"t{i}", svc, task_spec=specs[svc])
        for i, svc in enumerate(draw(st.lists(st.sampled_from(sorted(specs)), max_size=12)))
    ]
    return nodes, pending


@given(sgx_workloads())
@settings(max_examples=200, deadline=None)
def test_no_node_gives_more_than_it_advertises_and_each_task_gets_what_it_reserves(
    workload: tuple[list[Node], list[Task]],
) -> None:
    nodes, pending = workload
    decisions = schedule(pending, nodes, [])
    advertised: dict[str, int | None] = {}
    for n in nodes:
        resources = n.description.resources.generic_resources
        spec = resources[0].discrete_resource_spec if resources else None
        advertised[n.id] = spec.value if spec is not None else None
    by_id = {t.id: t for t in pending}
    given_on: Counter[str] = Counter()
    for decision in decisions:
        reserved = by_id[decision.task_id].spec.resources
        assert reserved is not None
        assert reserved.reservations is not None
        (wanted,) = reserved.reservations.generic_resources or []
        assert wanted.discrete_resource_spec is not None
        want = wanted.discrete_resource_spec.value
        if not decision.placed:
            on = f"{len(nodes)} nodes" if len(nodes) > 1 else "1 node"
            assert decision.error == no_suitable_node(f"insufficient resources on {on}")
            continue
        assert decision.node_id is not None
        assert advertised[decision.node_id] is not None  # never where sgx is not advertised
        assert decision.generic == ([sgx(want)] if want else [])
        given_on[decision.node_id] += want
    for node_id, total in given_on.items():
        assert total <= (advertised[node_id] or 0)
