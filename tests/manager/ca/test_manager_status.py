"""The manager status the CA writes with each certificate: `docker node ls`'s MANAGER STATUS."""

from __future__ import annotations

import pytest

from swarmlet.clock import FakeClock
from swarmlet.ids import new_id
from swarmlet.manager.ca import CertificateAuthority, new_cluster_root
from swarmlet.manager.ca.authority import manager_status_of
from swarmlet.manager.store import Op, Store
from swarmlet.models import (
    Cluster,
    ManagerStatus,
    Node,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
)
from swarmlet.pki import read_certificate
from swarmlet.pki.ca import new_key_and_csr


@pytest.fixture
async def store() -> Store:
    clock = FakeClock()
    store = Store(clock=clock)
    root_ca, tokens = new_cluster_root(clock.now())
    await store.commit([Op.create(Cluster(id=new_id(), root_ca=root_ca, join_tokens=tokens))])
    return store


@pytest.fixture
def ca(store: Store) -> CertificateAuthority:
    return CertificateAuthority(store, FakeClock())


def node(role: NodeRole, addr: str = "10.0.0.2", status: ManagerStatus | None = None) -> Node:
    return Node(
        id=new_id(),
        spec=NodeSpec(role=role),
        status=NodeStatus(state=NodeState.READY, addr=addr),
        manager_status=status,
    )


async def set_role(store: Store, node_id: str, role: NodeRole) -> None:
    current = store.get(Node, node_id)
    await store.commit([Op.update(current.replace(spec=current.spec.replace(role=role)))])


async def renew(ca: CertificateAuthority, certificate: str) -> None:
    await ca.renew(read_certificate(certificate), new_key_and_csr()[1])


def test_a_manager_certificate_makes_a_node_a_reachable_manager() -> None:
    assert manager_status_of(node(NodeRole.MANAGER)) == ManagerStatus(
        leader=False, reachability="reachable", addr="10.0.0.2:2377"
    )


def test_the_leader_keeps_its_status() -> None:
    leader = ManagerStatus(leader=True, addr="10.0.0.1:2377")
    assert manager_status_of(node(NodeRole.MANAGER, status=leader)) == leader


def test_a_worker_certificate_takes_the_status_away() -> None:
    reachable = ManagerStatus(leader=False, addr="10.0.0.2:2377")
    assert manager_status_of(node(NodeRole.WORKER, status=reachable)) is None


def test_a_node_with_no_address_yet_has_no_manager_address() -> None:
    status = manager_status_of(node(NodeRole.MANAGER, addr=""))
    assert status is not None
    assert status.addr == ""


async def test_promotion_and_demotion_are_recorded_with_the_renewals(
    ca: CertificateAuthority, store: Store
) -> None:
    worker = node(NodeRole.WORKER)
    issued = await ca.create_node_certificate(worker, new_key_and_csr()[1])
    assert store.get(Node, worker.id).manager_status is None

    await set_role(store, worker.id, NodeRole.MANAGER)
    # The status follows the certificate, not the spec: nothing yet before the renewal.
    assert store.get(Node, worker.id).manager_status is None
    await renew(ca, issued.certificate)
    promoted = store.get(Node, worker.id)
    assert promoted.manager_status == ManagerStatus(
        leader=False, reachability="reachable", addr="10.0.0.2:2377"
    )
    assert promoted.certificate is not None
    assert promoted.certificate.role is NodeRole.MANAGER

    await set_role(store, worker.id, NodeRole.WORKER)
    await renew(ca, issued.certificate)
    assert store.get(Node, worker.id).manager_status is None


async def test_the_leaders_renewal_leaves_it_the_leader(
    ca: CertificateAuthority, store: Store
) -> None:
    status = ManagerStatus(leader=True, addr="10.0.0.1:2377")
    leader = node(NodeRole.MANAGER, addr="10.0.0.1", status=status)
    issued = await ca.create_node_certificate(leader, new_key_and_csr()[1])
    assert store.get(Node, leader.id).manager_status == status
    await renew(ca, issued.certificate)
    assert store.get(Node, leader.id).manager_status == status
