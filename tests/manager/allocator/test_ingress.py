"""``swarm init`` makes the ingress network in the commit that makes the cluster."""

from __future__ import annotations

from swarmlet.clock import FakeClock
from swarmlet.daemon.control import NodeControl
from swarmlet.daemon.state import NodeIdentity
from swarmlet.manager.api.control import InitRequest
from swarmlet.manager.store import Store
from swarmlet.models import Cluster, Network, NodeDescription, NodeRole


def test_swarm_init_makes_the_ingress_network_with_the_cluster(tmp_path):
    control = NodeControl(
        state_dir=tmp_path,
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
    store.commit(control._first_objects(identity, InitRequest(), NodeDescription()))
    assert store.revision == 1
    [ingress] = store.all(Network)
    assert ingress.name == "ingress"
    assert ingress.ingress
    assert ingress.driver == "overlay"
    assert (ingress.subnet, ingress.gateway, ingress.vni) == ("10.0.0.0/24", "10.0.0.1", 4096)
    assert len(ingress.id) == 25
    cluster = store.cluster()
    assert isinstance(cluster, Cluster)
    assert ingress.version == cluster.version
