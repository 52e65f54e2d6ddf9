"""``swarm init`` makes the ingress network in the commit that makes the cluster."""

from __future__ import annotations

from pathlib import Path

from swarmlet.api.control import InitRequest
from swarmlet.clock import FakeClock
from swarmlet.daemon.control import NodeControl
from swarmlet.daemon.state import NodeIdentity
from swarmlet.manager.store import Store
from swarmlet.models import Cluster, Network, Node, NodeDescription, NodeRole
from swarmlet.pki import Credentials, JoinToken, root_digest


async def init_swarm(state_dir: Path) -> Store:
    """What ``swarm init`` commits on node1 (a manager at 192.168.5.1), state kept in state_dir."""
    control = NodeControl(
        state_dir=state_dir,
        engine=None,  # type: ignore[arg-type]
        engine_socket="/nowhere.sock",
        hostname="node1",
        clock=FakeClock(),
        container_labels={},
    )
    identity = NodeIdentity(
        node_id="node1id",
        role=NodeRole.MANAGER,
        advertise_addr="192.168.5.1",
        listen_addr="0.0.0.0:2377",
        manager_addrs=["192.168.5.1:2377"],
    )
    store = Store()
    await control._found_cluster(store, identity, InitRequest(), NodeDescription())
    return store


async def test_swarm_init_makes_the_ingress_network_with_the_cluster(tmp_path):
    store = await init_swarm(tmp_path)
    [ingress] = store.all(Network)
    assert ingress.name == "ingress"
    assert ingress.ingress
    assert ingress.driver == "overlay"
    assert (ingress.subnet, ingress.gateway, ingress.vni) == ("10.0.0.0/24", "10.0.0.1", 4096)
    assert len(ingress.id) == 25
    cluster = store.cluster()
    assert isinstance(cluster, Cluster)
    assert ingress.version == cluster.version


async def test_swarm_init_makes_a_root_ca_and_the_first_managers_certificate(tmp_path):
    store = await init_swarm(tmp_path)
    cluster = store.cluster()
    assert cluster is not None
    root = cluster.root_ca.ca_cert
    for token in (cluster.join_tokens.worker, cluster.join_tokens.manager):
        assert JoinToken.parse(token).digest == root_digest(root)
    assert cluster.join_tokens.worker != cluster.join_tokens.manager
    credentials = Credentials.of(tmp_path)
    certificate = credentials.certificate()
    assert (certificate.node_id, certificate.role, certificate.cluster_id) == (
        "node1id",
        NodeRole.MANAGER,
        cluster.id,
    )
    assert credentials.trust() == root
    node = store.get(Node, "node1id")
    assert node.certificate is not None
    assert node.certificate.role == NodeRole.MANAGER
    assert node.certificate.serial == f"{certificate.serial:x}"
