import pytest

from swarmlet.manager.scheduler.filters import (
    ConstraintFilter,
    HostPortFilter,
    MaxReplicasFilter,
    ReadyFilter,
    ResourceFilter,
)
from swarmlet.manager.scheduler.nodeinfo import NodeInfo, node_infos
from swarmlet.manager.scheduler.pipeline import (
    DEFAULT_PIPELINE,
    explain_failures,
    no_suitable_node,
)
from swarmlet.manager.scheduler.placement import schedule
from swarmlet.models import NodeAvailability, NodeState, Task, TaskState
from swarmlet.models.service import EndpointSpec
from tests.manager.scheduler.builders import CPU, GB, node, spec, task, tasks

READY = ReadyFilter()
RESOURCES = ResourceFilter()
CONSTRAINTS = ConstraintFilter()
MAX_REPLICAS = MaxReplicasFilter()
HOST_PORTS = HostPortFilter()


def info(**node_fields: object) -> NodeInfo:
    return NodeInfo.of(node(**node_fields))  # type: ignore[arg-type]


# Ready and active


@pytest.mark.parametrize(
    ("state", "availability", "passes"),
    [
        (NodeState.READY, NodeAvailability.ACTIVE, True),
        (NodeState.READY, NodeAvailability.PAUSE, False),
        (NodeState.READY, NodeAvailability.DRAIN, False),
        (NodeState.DOWN, NodeAvailability.ACTIVE, False),
        (NodeState.UNKNOWN, NodeAvailability.ACTIVE, False),
        (NodeState.DISCONNECTED, NodeAvailability.ACTIVE, False),
    ],
)
def test_ready_filter_takes_only_ready_and_active_nodes(state, availability, passes):
    check = READY.check_for(task("t"))
    assert check is not None
    assert check(info(state=state, availability=availability)) is passes


def test_ready_filter_explanations():
    assert READY.explain(1) == "1 node not available for new tasks"
    assert READY.explain(3) == "3 nodes not available for new tasks"


# Resources


def test_resource_filter_applies_only_to_tasks_that_reserve_something():
    assert RESOURCES.check_for(task("t")) is None
    assert RESOURCES.check_for(task("t", task_spec=spec(cpus=0, memory=0))) is None
    assert RESOURCES.check_for(task("t", task_spec=spec(cpus=1))) is not None
    assert RESOURCES.check_for(task("t", task_spec=spec(memory=1))) is not None


def test_resource_filter_fits_reservations_into_what_active_tasks_left():
    check = RESOURCES.check_for(task("t", task_spec=spec(cpus=2 * CPU, memory=2 * GB)))
    assert check is not None
    assert check(info(cpus=2 * CPU, memory=2 * GB))
    assert not check(info(cpus=1 * CPU, memory=8 * GB))
    assert not check(info(cpus=8 * CPU, memory=1 * GB))

    big = node("n", cpus=4 * CPU, memory=4 * GB)
    running = task("r", node_id="n", state=TaskState.RUNNING, task_spec=spec(cpus=3 * CPU))
    failed = task("f", node_id="n", state=TaskState.FAILED, task_spec=spec(cpus=4 * CPU))
    infos = node_infos([big], [running, failed])
    # 4 - 3 CPUs are left: the failed task no longer holds its reservation.
    assert not check(infos["n"])
    assert infos["n"].free_nano_cpus == 1 * CPU


def test_resource_filter_explanations():
    assert RESOURCES.explain(1) == "insufficient resources on 1 node"
    assert RESOURCES.explain(2) == "insufficient resources on 2 nodes"


# Constraints


def test_constraint_filter_applies_only_to_tasks_with_constraints():
    assert CONSTRAINTS.check_for(task("t")) is None
    assert CONSTRAINTS.check_for(task("t", task_spec=spec(max_replicas=1))) is None
    # An invalid constraint that got past the API is ignored, as in SwarmKit.
    assert CONSTRAINTS.check_for(task("t", task_spec=spec(constraints=["bogus"]))) is None


def test_constraint_filter_checks_every_constraint():
    constrained = task("t", task_spec=spec(constraints=["node.labels.zone==east"]))
    check = CONSTRAINTS.check_for(constrained)
    assert check is not None
    assert check(info(labels={"zone": "east"}))
    assert not check(info(labels={"zone": "west"}))
    assert not check(info())


def test_constraint_filter_explanations():
    assert CONSTRAINTS.explain(1) == "scheduling constraints not satisfied on 1 node"
    assert CONSTRAINTS.explain(3) == "scheduling constraints not satisfied on 3 nodes"


# Max replicas per node


def test_max_replicas_filter_counts_the_services_active_tasks_on_the_node():
    assert MAX_REPLICAS.check_for(task("t")) is None
    check = MAX_REPLICAS.check_for(task("t", "web", task_spec=spec(max_replicas=2)))
    assert check is not None
    n = node("n")
    on_node = [
        task("a", "web", node_id="n", state=TaskState.RUNNING),
        task("b", "web", node_id="n", state=TaskState.ASSIGNED),
        task("c", "web", node_id="n", state=TaskState.SHUTDOWN),
        task("d", "db", node_id="n", state=TaskState.RUNNING),
    ]
    assert check(node_infos([n], on_node[2:])["n"])
    assert check(node_infos([n], on_node[1:])["n"])
    assert not check(node_infos([n], on_node)["n"])


def test_max_replicas_filter_explanation_has_no_count():
    assert MAX_REPLICAS.explain(1) == "max replicas per node limit exceed"
    assert MAX_REPLICAS.explain(5) == "max replicas per node limit exceed"


# The pipeline


def test_filters_apply_per_task_in_pipeline_order():
    plain = DEFAULT_PIPELINE.checks_for(task("t"))
    assert [type(f) for f, _ in plain.checks] == [ReadyFilter]
    full = task(
        "t",
        task_spec=spec(cpus=1, constraints=["node.role==worker"], max_replicas=1),
    )
    assert [type(f) for f, _ in DEFAULT_PIPELINE.checks_for(full).checks] == [
        ReadyFilter,
        ResourceFilter,
        ConstraintFilter,
        MaxReplicasFilter,
    ]


def test_a_node_is_charged_to_the_first_filter_that_rejects_it():
    constrained = task("t", task_spec=spec(cpus=2 * CPU, constraints=["node.labels.zone==east"]))
    checks = DEFAULT_PIPELINE.checks_for(constrained)
    nodes = node_infos(
        [
            # Down and in the wrong zone: charged to readiness only.
            node("down1", state=NodeState.DOWN),
            node("down2", state=NodeState.DOWN, labels={"zone": "east"}),
            # Too small and in the wrong zone: charged to resources.
            node("small", cpus=1 * CPU),
            node("west", labels={"zone": "west"}),
            node("east", labels={"zone": "east"}),
        ],
        [],
    )
    failures = {type(f): count for f, count in checks.failures(nodes.values())}
    assert failures == {ReadyFilter: 2, ResourceFilter: 1, ConstraintFilter: 1}
    assert checks.explain(nodes.values()) == (
        "2 nodes not available for new tasks; insufficient resources on 1 node;"
        " scheduling constraints not satisfied on 1 node"
    )


def test_explanations_are_sorted_by_most_failures_ties_in_pipeline_order():
    failures = [(READY, 1), (RESOURCES, 0), (CONSTRAINTS, 3), (MAX_REPLICAS, 1)]
    assert explain_failures(failures) == (
        "scheduling constraints not satisfied on 3 nodes; 1 node not available for new tasks;"
        " max replicas per node limit exceed"
    )
    assert explain_failures([(READY, 0), (CONSTRAINTS, 0)]) == ""


def test_swarmkits_own_example():
    failures = [(READY, 2), (RESOURCES, 1)]
    assert no_suitable_node(explain_failures(failures)) == (
        "no suitable node (2 nodes not available for new tasks; insufficient resources on 1 node)"
    )


def test_no_suitable_node_without_an_explanation():
    assert no_suitable_node("") == "no suitable node"
    assert no_suitable_node("insufficient resources on 1 node") == (
        "no suitable node (insufficient resources on 1 node)"
    )


def test_static_and_dynamic_checks():
    full = task("t", task_spec=spec(cpus=1, constraints=["node.role==worker"], max_replicas=1))
    checks = DEFAULT_PIPELINE.checks_for(full)
    assert [type(f) for f, _ in checks.static().checks] == [ReadyFilter, ConstraintFilter]
    assert [type(f) for f, _ in checks.dynamic().checks] == [ResourceFilter, MaxReplicasFilter]


# Host-mode ports


def published(*ports: tuple[int, str], mode: str = "host") -> EndpointSpec:
    return EndpointSpec.from_api(
        {
            "Ports": [
                {"TargetPort": 80, "PublishedPort": port, "Protocol": protocol,
                 "PublishMode": mode}
                for port, protocol in ports
            ]
        }
    )  # fmt: skip


def test_host_port_filter_applies_only_to_fixed_host_mode_ports():
    assert HOST_PORTS.check_for(task("t")) is None
    assert (
        HOST_PORTS.check_for(with_ports(task("t"), published((8080, "tcp"), mode="ingress")))
        is None
    )
    assert HOST_PORTS.check_for(with_ports(task("t"), published((0, "tcp")))) is None
    assert HOST_PORTS.check_for(with_ports(task("t"), published((8080, "tcp")))) is not None


def with_ports(t: Task, endpoint: EndpointSpec) -> Task:
    return t.replace(endpoint_spec=endpoint)


def test_host_port_filter_keeps_a_port_to_one_active_task_per_node():
    web = published((8080, "tcp"))
    busy = with_ports(task("a", "other", node_id="node1", state=TaskState.RUNNING), web)
    ended = with_ports(task("b", "other", node_id="node2", state=TaskState.FAILED), web)
    udp = with_ports(task("c", "other", node_id="node3", state=TaskState.RUNNING),
                     published((8080, "udp")))  # fmt: skip
    infos = node_infos([node("node1"), node("node2"), node("node3")], [busy, ended, udp])
    check = HOST_PORTS.check_for(with_ports(task("t"), web))
    assert check is not None
    assert [check(infos[n]) for n in ("node1", "node2", "node3")] == [False, True, True]
    assert HOST_PORTS.explain(1) == "host-mode port already in use on 1 node"
    assert HOST_PORTS.explain(2) == "host-mode port already in use on 2 nodes"


def test_a_host_mode_service_gets_one_task_per_node_and_the_rest_wait():
    web = published((8080, "tcp"))
    pending = [with_ports(t, web) for t in tasks(3)]
    decisions = schedule(pending, [node("node1"), node("node2")], [])
    placed = [d.node_id for d in decisions if d.node_id]
    assert sorted(placed) == ["node1", "node2"]
    [waiting] = [d for d in decisions if d.node_id is None]
    assert waiting.error == "no suitable node (host-mode port already in use on 2 nodes)"
