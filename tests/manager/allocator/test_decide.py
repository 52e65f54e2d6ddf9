from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmlet.manager.allocator import NO_INGRESS, PENDING_MESSAGE, ClusterState, allocate
from swarmlet.models import (
    Endpoint,
    EndpointVirtualIP,
    Network,
    Node,
    NodeAttachment,
    NodeState,
    Service,
    Task,
    TaskState,
)
from tests.manager.allocator.builders import (
    NOW,
    addresses,
    ingress,
    network,
    node,
    port,
    service,
    task,
)

INGRESS = ingress()
APPS = network("apps", [INGRESS])


def run(
    networks: Sequence[Network] = (INGRESS, APPS),
    services: Sequence[Service] = (),
    tasks: Sequence[Task] = (),
    nodes: Sequence[Node] = (),
):
    return allocate(ClusterState(list(networks), list(services), list(tasks), list(nodes)), NOW)


def vips(svc: Service) -> list[tuple[str, str]]:
    assert svc.endpoint is not None
    return [(v.network_id, v.addr) for v in svc.endpoint.virtual_ips or []]


# Services


def test_a_service_gets_a_vip_on_each_network_ingress_first():
    web = service("web", networks=[APPS.id], ports=[port(80)])
    [written] = run(services=[web]).services
    assert vips(written) == [(INGRESS.id, "10.0.0.2/24"), (APPS.id, "10.0.1.2/24")]
    assert written.endpoint is not None
    assert [(p.target_port, p.published_port) for p in written.endpoint.ports or []] == [
        (80, 30000)
    ]


def test_dnsrr_services_get_no_vip_and_services_without_networks_no_endpoint_change():
    dns = service("dns", networks=[APPS.id], mode="dnsrr")
    plain = service("plain")
    written = run(services=[dns, plain]).services
    assert [s.id for s in written] == []


def test_vips_are_kept_and_those_of_dropped_networks_released():
    web = service("web", networks=[APPS.id])
    [first] = run(services=[web]).services
    assert vips(first) == [(APPS.id, "10.0.1.2/24")]
    assert run(services=[first]).services == []  # nothing to change
    other = network("other", [INGRESS, APPS])
    moved = first.replace(spec=service("web", networks=[other.id, APPS.id]).spec)
    [second] = run([INGRESS, APPS, other], services=[moved]).services
    assert vips(second) == [(other.id, "10.0.2.2/24"), (APPS.id, "10.0.1.2/24")]
    gone = second.replace(spec=service("web", networks=[other.id]).spec)
    api = service("api", networks=[APPS.id])
    third = {s.id: s for s in run([INGRESS, APPS, other], services=[gone, api]).services}
    assert vips(third[gone.id]) == [(other.id, "10.0.2.2/24")]
    assert vips(third[api.id]) == [(APPS.id, "10.0.1.2/24")]  # released, then reused


def test_a_vip_on_a_deleted_network_is_dropped():
    web = service("web", networks=[APPS.id])
    [first] = run(services=[web]).services
    [second] = run([INGRESS], services=[first]).services
    assert second.endpoint is not None
    assert second.endpoint.virtual_ips is None


# Tasks


def test_new_tasks_become_pending_with_an_address_on_each_network():
    web = service("web", networks=[(APPS.id, ["db", "store"])], ports=[port(80)])
    one, two = task(web, 1), task(web, 2)
    result = run(services=[web], tasks=[one, two])
    by_id = {t.id: t for t in result.tasks}
    for written in by_id.values():
        assert written.state == TaskState.PENDING
        assert written.status.message == PENDING_MESSAGE
        assert written.status.err is None
        assert [a.network.name for a in written.networks_attachments] == ["ingress", "apps"]
        assert written.networks_attachments[1].aliases == ["db", "store"]
        assert written.networks_attachments[0].aliases == []
    # The VIPs were given first (services before tasks), so tasks follow them.
    assert addresses(by_id[one.id]) == {"ingress": "10.0.0.3/24", "apps": "10.0.1.3/24"}
    assert addresses(by_id[two.id]) == {"ingress": "10.0.0.4/24", "apps": "10.0.1.4/24"}
    assert result.waiting == []


def test_tasks_not_new_or_not_meant_to_run_are_left_alone():
    web = service("web", networks=[APPS.id], mode="dnsrr")
    tasks = [
        task(web, 1, state=TaskState.PENDING),
        task(web, 2, desired=TaskState.SHUTDOWN),
        task(service("gone"), 1),
    ]
    assert run(services=[web], tasks=tasks).tasks == []


def test_a_task_whose_network_is_missing_waits_with_an_error():
    web = service("web", networks=[APPS.id])
    waiting = task(web)
    result = run([INGRESS], services=[web], tasks=[waiting])
    [written] = result.tasks
    assert written.state == TaskState.NEW
    assert written.status.err == f"network {APPS.id} not found"
    assert result.waiting == [waiting.id]
    # The same error is not written again.
    assert run([INGRESS], services=[web], tasks=[written]).tasks == []


def test_a_task_that_needs_ingress_without_one_waits():
    web = service("web", ports=[port(80)])
    [written] = run([APPS], services=[web], tasks=[task(web)]).tasks
    assert (written.state, written.status.err) == (TaskState.NEW, NO_INGRESS)


def test_a_full_subnet_leaves_the_task_new_and_holds_nothing_half_made():
    small = network("small", [INGRESS], subnet="10.5.0.0/29")  # 5 addresses after the gateway
    web = service("web", networks=[APPS.id, small.id], mode="dnsrr")
    tasks = [task(web, slot) for slot in range(1, 8)]
    result = run([INGRESS, APPS, small], services=[web], tasks=tasks)
    pending = [t for t in result.tasks if t.state == TaskState.PENDING]
    waiting = [t for t in result.tasks if t.state == TaskState.NEW]
    assert len(pending) == 5
    assert len(waiting) == 2
    assert all("no address left on network small" in (t.status.err or "") for t in waiting)
    # The waiting tasks took no address on apps: the next apps address is the 6th.
    other = service("other", networks=[APPS.id])
    [vip] = run([INGRESS, APPS, small], services=[other], tasks=result.tasks).services
    assert vips(vip) == [(APPS.id, "10.0.1.7/24")]


def test_released_and_deleted_tasks_free_their_addresses():
    web = service("web", networks=[APPS.id], mode="dnsrr")
    one, two, three = (
        t for t in run(services=[web], tasks=[task(web, s) for s in (1, 2, 3)]).tasks
    )
    assert [addresses(t)["apps"] for t in (one, two, three)] == [
        "10.0.1.2/24",
        "10.0.1.3/24",
        "10.0.1.4/24",
    ]
    ended = one.replace(
        status=one.status.replace(state=TaskState.FAILED), desired_state=TaskState.SHUTDOWN
    )
    failed_but_current = two.replace(status=two.status.replace(state=TaskState.FAILED))
    # three is deleted: not in the state at all.
    fresh = [task(web, 4), task(web, 5), task(web, 6)]
    result = run(services=[web], tasks=[ended, failed_but_current, *fresh])
    got = sorted(addresses(t)["apps"] for t in result.tasks)
    assert got == ["10.0.1.2/24", "10.0.1.4/24", "10.0.1.5/24"]


# Nodes


def test_ready_nodes_get_an_address_on_each_network_in_use():
    web = service("web", networks=[APPS.id], ports=[port(80)])
    n1, n2, down = node("n1"), node("n2"), node("n3", NodeState.DOWN)
    result = run(services=[web], nodes=[n1, n2, down])
    by_id = {n.id: n for n in result.nodes}
    assert set(by_id) == {"n1", "n2"}
    assert [(a.network_id, a.address) for a in by_id["n1"].attachments] == [
        (INGRESS.id, "10.0.0.3/24"),
        (APPS.id, "10.0.1.3/24"),
    ]
    assert [(a.network_id, a.address) for a in by_id["n2"].attachments] == [
        (INGRESS.id, "10.0.0.4/24"),
        (APPS.id, "10.0.1.4/24"),
    ]


def test_nodes_keep_their_addresses_and_release_unused_ones():
    kept = node("n1").replace(
        attachments=[
            NodeAttachment(network_id=APPS.id, address="10.0.1.9/24"),
            NodeAttachment(network_id=INGRESS.id, address="10.0.0.9/24"),
        ]
    )
    down = node("n2", NodeState.DOWN).replace(
        attachments=[NodeAttachment(network_id=APPS.id, address="10.0.1.10/24")]
    )
    web = service("web", networks=[APPS.id])
    result = run(services=[web], nodes=[kept, down])
    [written] = result.nodes
    # ingress is used by no one: released; apps stays where it was.
    assert written.attachments == [NodeAttachment(network_id=APPS.id, address="10.0.1.9/24")]
    # The down node keeps its address while apps is in use, and the VIP avoids both.
    [svc] = result.services
    assert vips(svc) == [(APPS.id, "10.0.1.2/24")]
    nothing = run(services=[], nodes=[written, down])
    assert {n.id: n.attachments for n in nothing.nodes} == {"n1": [], "n2": []}


# The property: no two live holders share an address on a network.


def holders(state: ClusterState) -> list[tuple[str, str]]:
    """(network, address) of every live holder."""
    held: list[tuple[str, str]] = []
    for svc in state.services:
        for vip in (svc.endpoint.virtual_ips or []) if svc.endpoint else []:
            held.append((vip.network_id, vip.addr.split("/")[0]))
    for t in state.tasks:
        if not (t.desired_state > TaskState.RUNNING and t.state.is_terminal):
            for a in t.networks_attachments:
                held.extend((a.network.id, addr.split("/")[0]) for addr in a.addresses)
    for n in state.nodes:
        held.extend((a.network_id, a.address.split("/")[0]) for a in n.attachments)
    return held


SMALL = network("small", [INGRESS, APPS], subnet="10.9.0.0/28")
NETWORKS = [INGRESS, APPS, SMALL]
NETWORK_CHOICES = st.lists(st.sampled_from([APPS.id, SMALL.id]), unique=True, max_size=2)

actions = st.one_of(
    st.tuples(
        st.just("service"), NETWORK_CHOICES, st.booleans(), st.sampled_from(["vip", "dnsrr"])
    ),
    st.tuples(st.just("task"), st.integers(0, 10)),
    st.tuples(st.just("end"), st.integers(0, 100)),
    st.tuples(st.just("delete_task"), st.integers(0, 100)),
    st.tuples(st.just("delete_service"), st.integers(0, 10)),
    st.tuples(st.just("node"), st.sampled_from(list(NodeState))),
    st.tuples(st.just("update"), st.integers(0, 10), NETWORK_CHOICES),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(actions, max_size=30))
def test_no_two_live_holders_share_an_address(steps):
    services: dict[str, Service] = {}
    tasks: dict[str, Task] = {}
    nodes: dict[str, Node] = {}
    for step in steps:
        kind = step[0]
        if kind == "service":
            _, nets, publishes, mode = step
            name = f"s{len(services)}-{len(tasks)}"
            ports = [port(80)] if publishes and mode == "vip" else []
            svc = service(name, networks=nets, ports=ports, mode=mode)
            services[svc.id] = svc
        elif kind == "task" and services:
            svc = list(services.values())[step[1] % len(services)]
            made = task(svc, len(tasks) + 1)
            tasks[made.id] = made
        elif kind == "end" and tasks:
            t = list(tasks.values())[step[1] % len(tasks)]
            tasks[t.id] = t.replace(
                status=t.status.replace(state=TaskState.COMPLETE),
                desired_state=TaskState.SHUTDOWN,
            )
        elif kind == "delete_task" and tasks:
            del tasks[list(tasks)[step[1] % len(tasks)]]
        elif kind == "delete_service" and services:
            del services[list(services)[step[1] % len(services)]]
        elif kind == "node":
            made = node(f"n{len(nodes)}", step[1])
            nodes[made.id] = made
        elif kind == "update" and services:
            svc = list(services.values())[step[1] % len(services)]
            spec = service(svc.spec.name, networks=step[2]).spec
            services[svc.id] = svc.replace(spec=spec)
        state = ClusterState(
            NETWORKS, list(services.values()), list(tasks.values()), [*nodes.values()]
        )
        result = allocate(state, NOW)
        for svc in result.services:
            services[svc.id] = svc
        for t in result.tasks:
            tasks[t.id] = t
        for n in result.nodes:
            nodes[n.id] = n
        after = ClusterState(
            NETWORKS, list(services.values()), list(tasks.values()), [*nodes.values()]
        )
        held = holders(after)
        assert len(held) == len(set(held)), held
        # Every holder's address is a usable one of its network.
        by_id = {n.id: n for n in NETWORKS}
        for network_id, address in held:
            assert address != by_id[network_id].gateway
        # Allocation is stable: a second pass changes nothing.
        again = allocate(after, NOW)
        assert (again.services, again.nodes) == ([], [])
        assert all(t.state == TaskState.NEW for t in again.tasks)


def test_an_endpoint_without_vips_is_written_once():
    web = service("web", ports=[port(80, 8080, mode="host")])
    [written] = run(services=[web]).services
    published = [port(80, 8080, mode="host")]
    assert written.endpoint == Endpoint(spec=web.spec.endpoint_spec, ports=published)
    assert run(services=[written]).services == []


def test_a_vip_held_twice_is_given_again():
    web = service("web", networks=[APPS.id])
    clash = EndpointVirtualIP(network_id=APPS.id, addr="10.0.1.2/24")
    one = web.replace(endpoint=Endpoint(virtual_ips=[clash]))
    two = service("api", networks=[APPS.id]).replace(endpoint=Endpoint(virtual_ips=[clash]))
    [fixed] = run(services=[one, two]).services
    assert fixed.id == one.id  # services are decided by ID: api keeps it
    assert vips(fixed) == [(APPS.id, "10.0.1.3/24")]
