"""The network state each host is sent, computed from plain objects."""

from __future__ import annotations

from dataclasses import replace

from swarmlet.manager.dispatcher.networks import Cluster, network_state
from swarmlet.models import (
    Endpoint,
    EndpointSpec,
    EndpointVirtualIP,
    IPAMConfig,
    Network,
    NetworkAttachment,
    NetworkAttachmentConfig,
    NetworkIPAM,
    Node,
    NodeAttachment,
    NodeState,
    NodeStatus,
    PortConfig,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from swarmlet.models.service import NetworkAttachmentSpec
from swarmlet.protocol import AttachmentEntry, Peer, PublishedBackend

INGRESS = Network(
    id="ing",
    name="ingress",
    ingress=True,
    vni=4096,
    ipam=NetworkIPAM(config=[IPAMConfig(subnet="10.0.0.0/24", gateway="10.0.0.1")]),
)
COINS = Network(
    id="net",
    name="dockercoins",
    vni=4097,
    ipam=NetworkIPAM(config=[IPAMConfig(subnet="10.0.1.0/24", gateway="10.0.1.1")]),
)


def node(node_id: str, addr: str, *attachments: tuple[str, str], down: bool = False) -> Node:
    state = NodeState.DOWN if down else NodeState.READY
    return Node(
        id=node_id,
        status=NodeStatus(state=state, addr=addr),
        attachments=[NodeAttachment(network_id=n, address=a) for n, a in attachments],
    )


def task(
    task_id: str,
    node_id: str,
    service_id: str,
    *addresses: tuple[Network, str],
    state: TaskState = TaskState.RUNNING,
    desired: TaskState = TaskState.RUNNING,
) -> Task:
    return Task(
        id=task_id,
        service_id=service_id,
        node_id=node_id,
        status=TaskStatus(state=state),
        desired_state=desired,
        networks_attachments=[
            NetworkAttachment(network=net, addresses=[address]) for net, address in addresses
        ],
    )


def service(service_id: str, name: str, *vips: tuple[str, str], ports=(), dnsrr=False):
    endpoint_spec = EndpointSpec(mode="dnsrr" if dnsrr else "vip", ports=list(ports) or None)
    return Service(
        id=service_id,
        spec=ServiceSpec(
            name=name,
            task_template=TaskSpec(
                networks=[
                    NetworkAttachmentConfig(target=n, aliases=[f"{name}-alias"])
                    for n, _ in vips
                    if n != "ing"
                ]
            ),
            endpoint_spec=endpoint_spec,
        ),
        endpoint=Endpoint(
            spec=endpoint_spec,
            ports=list(ports) or None,
            virtual_ips=[EndpointVirtualIP(network_id=n, addr=a) for n, a in vips],
        ),
    )


WEB_PORT = PortConfig(protocol="tcp", target_port=80, published_port=8000)
CLUSTER = Cluster(
    nodes={
        "n1": node("n1", "192.168.254.11", ("ing", "10.0.0.2/24"), ("net", "10.0.1.2/24")),
        "n2": node("n2", "192.168.254.12", ("ing", "10.0.0.3/24"), ("net", "10.0.1.3/24")),
        "n3": node("n3", "192.168.254.13", ("ing", "10.0.0.4/24"), down=True),
    },
    networks={"ing": INGRESS, "net": COINS},
    services={
        "redis": service("redis", "redis", ("net", "10.0.1.10/24")),
        "webui": service(
            "webui", "webui", ("ing", "10.0.0.10/24"), ("net", "10.0.1.11/24"), ports=[WEB_PORT]
        ),
    },
    tasks=[
        task("r1", "n2", "redis", (COINS, "10.0.1.20/24")),
        task("w1", "n1", "webui", (INGRESS, "10.0.0.21/24"), (COINS, "10.0.1.21/24")),
        task("w2", "n2", "webui", (INGRESS, "10.0.0.22/24"), (COINS, "10.0.1.22/24")),
        # Starting: present (it has its address) but not a backend yet.
        task("w3", "n2", "webui", (INGRESS, "10.0.0.23/24"), state=TaskState.STARTING),
        # Shut down: gone from the network.
        task("w4", "n2", "webui", (INGRESS, "10.0.0.24/24"), desired=TaskState.SHUTDOWN),
    ],
)


def test_a_host_learns_where_every_other_address_lives() -> None:
    state = network_state("n1", CLUSTER)
    assert [view.name for view in state.networks] == ["ingress", "dockercoins"]
    coins = next(view for view in state.networks if view.id == "net")
    assert coins.vni == 4097
    assert coins.subnet == "10.0.1.0/24"
    assert coins.local_address == "10.0.1.2/24"
    assert coins.peers == [
        Peer(ip="10.0.1.20", mac="02:42:0a:00:01:14", vtep="192.168.254.12"),
        Peer(ip="10.0.1.22", mac="02:42:0a:00:01:16", vtep="192.168.254.12"),
        Peer(ip="10.0.1.3", mac="02:42:0a:00:01:03", vtep="192.168.254.12"),
    ]
    ingress = next(view for view in state.networks if view.id == "ing")
    # The Down node's own address is not a peer; the shut-down task's is gone.
    assert [peer.ip for peer in ingress.peers] == ["10.0.0.22", "10.0.0.23", "10.0.0.3"]


def test_services_carry_their_vip_aliases_and_running_backends() -> None:
    coins = next(view for view in network_state("n1", CLUSTER).networks if view.id == "net")
    redis, webui = coins.services
    assert (redis.name, redis.vip, redis.backends, redis.aliases) == (
        "redis",
        "10.0.1.10",
        ["10.0.1.20"],
        ["redis-alias"],
    )
    assert (webui.vip, webui.backends) == ("10.0.1.11", ["10.0.1.21", "10.0.1.22"])


def test_the_mesh_knows_which_backends_are_local() -> None:
    (port,) = network_state("n1", CLUSTER).published
    assert (port.published_port, port.target_port, port.protocol) == (8000, 80, "tcp")
    assert port.backends == [
        PublishedBackend(ip="10.0.0.21", local=True),
        PublishedBackend(ip="10.0.0.22", local=False),
    ]
    (other,) = network_state("n2", CLUSTER).published
    assert [b.local for b in other.backends] == [False, True]


def test_dnsrr_services_have_no_vip() -> None:
    cluster = Cluster(
        nodes=CLUSTER.nodes,
        networks=CLUSTER.networks,
        services={"db": service("db", "db", ("net", "10.0.1.30/24"), dnsrr=True)},
        tasks=[task("d1", "n1", "db", (COINS, "10.0.1.31/24"))],
    )
    coins = next(view for view in network_state("n1", cluster).networks if view.id == "net")
    (db,) = coins.services
    assert db.vip is None
    assert db.backends == ["10.0.1.31"]


def test_a_host_on_no_network_gets_an_empty_state() -> None:
    cluster = Cluster(
        nodes={"n9": node("n9", "192.168.254.19")}, networks={}, services={}, tasks=[]
    )
    assert network_state("n9", cluster).networks == []
    assert network_state("unknown", cluster).published == []


DC = Network(
    id="dc",
    name="dc",
    vni=4098,
    attachable=True,
    ipam=NetworkIPAM(config=[IPAMConfig(subnet="10.0.2.0/24", gateway="10.0.2.1")]),
)


def attachment(
    task_id: str, node_id: str, address: str, state: TaskState = TaskState.RUNNING
) -> Task:
    """A plain container of node_id on DC (`docker run --network dc --name <task_id>`)."""
    return Task(
        id=task_id,
        name=f"c-{task_id}",
        service_id="",
        node_id=node_id,
        spec=TaskSpec(
            network_attachment_spec=NetworkAttachmentSpec(container_id=f"ctr-{task_id}"),
            networks=[NetworkAttachmentConfig(target="dc", aliases=[f"{task_id}-alias"])],
        ),
        status=TaskStatus(state=state),
        networks_attachments=[
            NetworkAttachment(network=DC, addresses=[address], aliases=[f"{task_id}-alias"])
        ],
    )


def with_dc(*tasks: Task) -> Cluster:
    """CLUSTER with DC and these tasks on it; n2 has its own address on DC (the allocator gives
    every Ready node one on a network in use), n1 none yet."""
    n2 = CLUSTER.nodes["n2"]
    on_dc = n2.replace(
        attachments=[*n2.attachments, NodeAttachment(network_id="dc", address="10.0.2.3/24")]
    )
    return Cluster(
        nodes={**CLUSTER.nodes, "n2": on_dc},
        networks={**CLUSTER.networks, "dc": DC},
        services=CLUSTER.services,
        tasks=[*CLUSTER.tasks, *tasks],
    )


def test_a_running_attachment_puts_its_node_on_the_network_and_is_a_peer_elsewhere() -> None:
    cluster = with_dc(attachment("a1", "n1", "10.0.2.5/24"))
    (mine,) = [view for view in network_state("n1", cluster).networks if view.id == "dc"]
    # Its host is on the network before it has an address of its own there.
    assert mine.local_address == ""
    assert [peer.ip for peer in mine.peers] == ["10.0.2.3"]
    (theirs,) = [view for view in network_state("n2", cluster).networks if view.id == "dc"]
    assert theirs.local_address == "10.0.2.3/24"
    assert theirs.peers == [Peer(ip="10.0.2.5", mac="02:42:0a:00:02:05", vtep="192.168.254.11")]
    # Every host on the network can resolve it: its own and the others.
    for view in (mine, theirs):
        assert view.attachments == [
            AttachmentEntry(id="a1", name="c-a1", aliases=["a1-alias"], address="10.0.2.5")
        ]
        assert view.services == []


def test_an_attachment_is_no_service_backend() -> None:
    cluster = with_dc(attachment("a1", "n1", "10.0.1.99/24"))
    for view in network_state("n2", cluster).networks:
        assert all("10.0.1.99" not in service.backends for service in view.services)


def test_an_attachment_still_waiting_for_its_address_puts_nothing_anywhere() -> None:
    waiting = attachment("a1", "n1", "10.0.2.5/24", state=TaskState.PENDING)
    cluster = with_dc(waiting)
    assert "dc" not in [view.id for view in network_state("n1", cluster).networks]
    (theirs,) = [view for view in network_state("n2", cluster).networks if view.id == "dc"]
    assert (theirs.peers, theirs.attachments) == ([], [])


def test_attachments_are_listed_by_name_on_their_network_only() -> None:
    cluster = with_dc(
        attachment("b2", "n2", "10.0.2.7/24"),
        attachment("a1", "n1", "10.0.2.5/24"),
    )
    views = {view.id: view for view in network_state("n2", cluster).networks}
    assert [entry.name for entry in views["dc"].attachments] == ["c-a1", "c-b2"]
    assert views["net"].attachments == []
    assert views["ing"].attachments == []


def test_a_node_with_a_data_path_address_is_reached_there() -> None:
    # n2 registered `--data-path-addr 192.168.99.12`: its VXLAN endpoint, not Status.Addr.
    n2 = CLUSTER.nodes["n2"].replace(data_path_addr="192.168.99.12")
    cluster = replace(CLUSTER, nodes={**CLUSTER.nodes, "n2": n2})
    coins = next(view for view in network_state("n1", cluster).networks if view.id == "net")
    assert {peer.vtep for peer in coins.peers} == {"192.168.99.12"}
    assert "DataPathAddr" not in n2.to_api()
