"""Root rotation and role changes: what nodes are told, and when a rotation ends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography import x509

from swarmlet.clock import FakeClock
from swarmlet.manager.ca import new_cluster_root
from swarmlet.manager.ca.rotation import (
    RootRotation,
    certificate_update,
    finish_rotation,
    start_rotation,
)
from swarmlet.manager.store import Op, Store
from swarmlet.models import (
    Cluster,
    Node,
    NodeCertificate,
    NodeDescription,
    NodeRole,
    NodeSpec,
    RootCA,
    TLSInfo,
)
from swarmlet.pki import JoinToken, root_digest, tls_info
from swarmlet.protocol import Certificates

NOW = FakeClock().now()


def cluster() -> Cluster:
    root_ca, tokens = new_cluster_root(NOW)
    return Cluster(id="c1", root_ca=root_ca, join_tokens=tokens)


def issued_by(root_pem: str, trust: str) -> TLSInfo:
    """What an agent reports when its certificate comes from ``root_pem``."""
    return tls_info(root_pem).replace(trust_root=trust)


def node(
    node_id: str = "n1",
    role: NodeRole = NodeRole.WORKER,
    certificate_role: NodeRole = NodeRole.WORKER,
    reported: TLSInfo | None = None,
) -> Node:
    return Node(
        id=node_id,
        spec=NodeSpec(role=role),
        certificate=NodeCertificate(
            role=certificate_role, serial="1", not_after=NOW + timedelta(days=90)
        ),
        description=NodeDescription(tls_info=reported),
    )


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_a_rotation_makes_a_new_root_cross_signed_by_the_old_one() -> None:
    root_ca = cluster().root_ca
    rotating = start_rotation(root_ca, NOW)
    assert rotating.ca_cert == root_ca.ca_cert
    assert rotating.new_ca_cert not in ("", root_ca.ca_cert)
    cross = load(rotating.cross_signed)
    new = load(rotating.new_ca_cert)
    assert cross.public_key() == new.public_key()
    assert cross.subject == new.subject
    cross.verify_directly_issued_by(load(root_ca.ca_cert))
    # Rotating again replaces the rotation in progress, still signed by the current root.
    again = start_rotation(rotating, NOW)
    assert again.new_ca_cert != rotating.new_ca_cert
    load(again.cross_signed).verify_directly_issued_by(load(root_ca.ca_cert))


def test_a_node_in_step_is_told_nothing() -> None:
    root_ca = cluster().root_ca
    settled = node(reported=issued_by(root_ca.ca_cert, root_ca.ca_cert))
    assert certificate_update(settled, root_ca) is None


def test_a_node_whose_role_changed_renews() -> None:
    root_ca = cluster().root_ca
    promoted = node(role=NodeRole.MANAGER, reported=issued_by(root_ca.ca_cert, root_ca.ca_cert))
    assert certificate_update(promoted, root_ca) == Certificates(trust=root_ca.ca_cert, renew=True)


def test_through_a_rotation_nodes_trust_both_roots_renew_then_trust_the_new_one() -> None:
    first = cluster()
    old = first.root_ca.ca_cert
    rotating = start_rotation(first.root_ca, NOW)
    both = old + rotating.new_ca_cert
    before = node(reported=issued_by(old, old))
    assert certificate_update(before, rotating) == Certificates(trust=both, renew=True)
    moved = node(reported=issued_by(rotating.new_ca_cert, both))
    assert certificate_update(moved, rotating) is None

    ended = finish_rotation(first.replace(root_ca=rotating), [moved])
    assert ended is not None
    new = rotating.new_ca_cert
    assert ended.root_ca == RootCA(ca_cert=new, ca_key=rotating.new_ca_key)
    assert certificate_update(moved, ended.root_ca) == Certificates(trust=new, renew=False)
    assert certificate_update(node(reported=issued_by(new, new)), ended.root_ca) is None


def test_a_rotation_ends_only_when_every_node_has_moved() -> None:
    first = cluster()
    old = first.root_ca.ca_cert
    rotating = first.replace(root_ca=start_rotation(first.root_ca, NOW))
    new = rotating.root_ca.new_ca_cert
    moved = node("n1", reported=issued_by(new, old + new))
    behind = node("n2", reported=issued_by(old, old + new))
    silent = node("n3")
    assert finish_rotation(rotating, [moved, behind]) is None
    assert finish_rotation(rotating, [moved, silent]) is None
    assert finish_rotation(first, [moved]) is None  # no rotation at all
    ended = finish_rotation(rotating, [moved])
    assert ended is not None
    # The tokens name the new root; their secrets stay, so nobody needs new tokens.
    for before, after in (
        (first.join_tokens.worker, ended.join_tokens.worker),
        (first.join_tokens.manager, ended.join_tokens.manager),
    ):
        assert JoinToken.parse(after).digest == root_digest(new)
        assert JoinToken.parse(after).secret == JoinToken.parse(before).secret


async def test_the_controller_ends_the_rotation_when_the_last_node_reports() -> None:
    clock = FakeClock()
    store = Store(clock=clock)
    first = cluster()
    rotating = first.replace(root_ca=start_rotation(first.root_ca, NOW))
    old, new = first.root_ca.ca_cert, rotating.root_ca.new_ca_cert
    await store.commit(
        [
            Op.create(rotating),
            Op.create(node("n1", reported=issued_by(new, old + new))),
            Op.create(node("n2", reported=issued_by(old, old + new))),
        ]
    )
    controller = asyncio.create_task(RootRotation(store, clock).run())
    await asyncio.sleep(0.01)
    current = store.cluster()
    assert current is not None
    assert current.root_ca.new_ca_cert == new
    behind = store.get(Node, "n2")
    described = behind.description.replace(tls_info=issued_by(new, old + new))
    await store.commit([Op.update(behind.replace(description=described))])
    await asyncio.sleep(0.01)
    current = store.cluster()
    assert current is not None
    assert current.root_ca == RootCA(ca_cert=new, ca_key=rotating.root_ca.new_ca_key)
    controller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await controller
