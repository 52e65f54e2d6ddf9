"""The daemon's role comes from its certificate: a manager's certificate without the store makes
a follower that forwards to the leader; a worker's, or the leader's store, does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmlet.api.backend import NO_CLUSTER
from swarmlet.clock import FakeClock
from swarmlet.daemon import state as identity_file
from swarmlet.daemon.control import NodeControl
from swarmlet.errors import Unavailable
from swarmlet.ids import new_id
from swarmlet.manager.api.follower import RemoteCluster
from swarmlet.manager.ca import CertificateAuthority, new_cluster_root
from swarmlet.manager.quorum import leave_refusal
from swarmlet.manager.store import Op, Store
from swarmlet.models import Cluster, Node, NodeRole, NodeSpec
from swarmlet.pki import Credentials
from swarmlet.pki.ca import new_key_and_csr

LEADER = "192.168.5.1:2377"


def node_control(state_dir: Path) -> NodeControl:
    return NodeControl(
        state_dir=state_dir,
        engine=None,  # type: ignore[arg-type]
        engine_socket="/nowhere.sock",
        hostname="node2",
        clock=FakeClock(),
        container_labels={},
    )


async def joined_with(state_dir: Path, role: NodeRole) -> NodeControl:
    """A node that joined as a worker (its node.json says so), holding a certificate of
    ``role``."""
    clock = FakeClock()
    store = Store(clock=clock)
    root_ca, tokens = new_cluster_root(clock.now())
    await store.commit([Op.create(Cluster(id=new_id(), root_ca=root_ca, join_tokens=tokens))])
    node = Node(id="node2id", spec=NodeSpec(role=role))
    key, csr = new_key_and_csr()
    issued = await CertificateAuthority(store, clock).create_node_certificate(node, csr)
    Credentials.of(state_dir).save(trust_pem=issued.trust, cert_pem=issued.certificate, key_pem=key)
    identity_file.save_identity(
        state_dir,
        identity_file.NodeIdentity(
            node_id="node2id",
            role=NodeRole.WORKER,
            advertise_addr="192.168.5.2",
            listen_addr="0.0.0.0:2377",
            manager_addrs=[LEADER],
        ),
    )
    control = node_control(state_dir)
    control._read_role()
    return control


async def test_a_manager_certificate_without_the_store_forwards_to_the_managers(
    tmp_path: Path,
) -> None:
    control = await joined_with(tmp_path, NodeRole.MANAGER)
    route = control.leader
    assert route is not None
    assert route.addrs == (LEADER,)
    assert control.store is None
    # The API's swarm requests go to the leader by that route.
    cluster = control.cluster
    assert isinstance(cluster, RemoteCluster)
    assert (cluster.route, cluster.is_manager, cluster.holds_store) == (route, True, False)
    await control.close()


async def test_a_worker_certificate_forwards_nothing(tmp_path: Path) -> None:
    control = await joined_with(tmp_path, NodeRole.WORKER)
    assert control.leader is None
    assert control.cluster is NO_CLUSTER


async def test_a_demoted_follower_stops_forwarding(tmp_path: Path) -> None:
    control = await joined_with(tmp_path, NodeRole.MANAGER)
    assert isinstance(control.cluster, RemoteCluster)
    # `docker node demote`: the renewed certificate says worker.
    await joined_with(tmp_path, NodeRole.WORKER)
    control._read_role()
    assert (control.leader, control.cluster) == (None, NO_CLUSTER)
    await control.close()


def test_outside_a_swarm_nothing_is_forwarded(tmp_path: Path) -> None:
    control = node_control(tmp_path)
    control._read_role()
    assert control.leader is None
    assert control.cluster is NO_CLUSTER


async def test_a_follower_leaves_only_when_forced(tmp_path: Path) -> None:
    control = await joined_with(tmp_path, NodeRole.MANAGER)
    with pytest.raises(Unavailable) as refused:
        await control.leave(force=False)
    # Not yet a member of the swarm's store (moby's "not an active manager").
    assert refused.value.message == leave_refusal(0, 0, active=False, locked=False)
