"""The manager's CA over the in-memory store: joins, first certificates, renewals, admission."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from swarmlet.clock import FakeClock
from swarmlet.errors import Forbidden, InvalidSpec, NameConflict, Unavailable
from swarmlet.ids import new_id
from swarmlet.manager.ca import CertificateAuthority, Issued, new_cluster_root
from swarmlet.manager.ca.authority import INVALID_TOKEN, NOT_A_SWARM, signer_of, trust_of
from swarmlet.manager.ca.rotation import start_rotation
from swarmlet.manager.store import Action, Op, Store
from swarmlet.models import (
    SECOND_NS,
    Cluster,
    ClusterSpec,
    JoinTokens,
    Node,
    NodeRole,
    NodeSpec,
    NodeState,
)
from swarmlet.models.cluster import CAConfig
from swarmlet.pki import CertificateInfo, JoinToken, read_certificate, root_digest, tls_info
from swarmlet.pki.ca import new_key_and_csr, new_root
from tests.pki.builders import dns_names, load, load_key, spki, subject

NINETY_DAYS = timedelta(days=90)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock) -> Store:
    store = Store(clock=clock)
    root_ca, tokens = new_cluster_root(clock.now())
    await store.commit([Op.create(Cluster(id=new_id(), root_ca=root_ca, join_tokens=tokens))])
    return store


@pytest.fixture
def ca(store: Store, clock: FakeClock) -> CertificateAuthority:
    return CertificateAuthority(store, clock)


def cluster_of(store: Store) -> Cluster:
    cluster = store.cluster()
    assert cluster is not None
    return cluster


async def update_cluster(store: Store, **changes: object) -> Cluster:
    (written,) = await store.commit([Op.update(cluster_of(store).replace(**changes))])
    assert isinstance(written, Cluster)
    return written


def csr() -> str:
    return new_key_and_csr()[1]


async def join_worker(ca: CertificateAuthority, store: Store) -> Issued:
    return await ca.join(cluster_of(store).join_tokens.worker, csr())


async def rotate_root(store: Store, clock: FakeClock) -> str:
    """Start a root rotation; the new root's certificate."""
    root_ca = start_rotation(cluster_of(store).root_ca, clock.now())
    await update_cluster(store, root_ca=root_ca)
    return root_ca.new_ca_cert


def peer_of(issued: Issued) -> CertificateInfo:
    return read_certificate(issued.certificate)


# A new cluster's root


def test_a_new_cluster_root_pins_both_join_tokens_to_it(clock: FakeClock) -> None:
    root_ca, tokens = new_cluster_root(clock.now())
    worker, manager = JoinToken.parse(tokens.worker), JoinToken.parse(tokens.manager)
    assert worker.digest == manager.digest == root_digest(root_ca.ca_cert)
    assert worker.secret != manager.secret
    assert spki(load_key(root_ca.ca_key)) == spki(load(root_ca.ca_cert))
    assert (root_ca.new_ca_cert, root_ca.new_ca_key) == ("", "")


def test_every_new_cluster_has_its_own_root(clock: FakeClock) -> None:
    first, _ = new_cluster_root(clock.now())
    second, _ = new_cluster_root(clock.now())
    assert first.ca_cert != second.ca_cert


def test_the_root_is_the_clusters(ca: CertificateAuthority, store: Store) -> None:
    assert ca.root() == cluster_of(store).root_ca.ca_cert


@pytest.mark.parametrize("with_cluster", [False, True], ids=["no-cluster", "no-root"])
async def test_without_a_root_the_ca_is_unavailable(clock: FakeClock, with_cluster: bool) -> None:
    store = Store(clock=clock)
    if with_cluster:
        await store.commit([Op.create(Cluster(id=new_id()))])
    ca = CertificateAuthority(store, clock)
    with pytest.raises(Unavailable, match=NOT_A_SWARM):
        ca.root()
    with pytest.raises(Unavailable, match=NOT_A_SWARM):
        await ca.join(str(JoinToken.new("0" * 50)), csr())
    assert store.all(Node) == []


# Joining


async def test_the_worker_token_makes_a_worker_and_its_certificate(
    ca: CertificateAuthority, store: Store, clock: FakeClock
) -> None:
    cluster = cluster_of(store)
    watch = store.watch()
    key_pem, csr_pem = new_key_and_csr()
    issued = await ca.join(cluster.join_tokens.worker, csr_pem)

    (event,) = watch.drain()
    assert event.action is Action.CREATE
    node = store.get(Node, issued.node_id)
    assert event.obj == node
    assert node.spec.role is NodeRole.WORKER
    assert node.status.state is NodeState.UNKNOWN
    assert node.status.message == "waiting for its first session"

    cert = load(issued.certificate)
    assert subject(cert, NameOID.COMMON_NAME) == [node.id]
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-worker"]
    assert subject(cert, NameOID.ORGANIZATION_NAME) == [cluster.id]
    assert dns_names(cert) == ["swarm-worker", node.id]
    assert spki(cert) == spki(load_key(key_pem))
    cert.verify_directly_issued_by(load(cluster.root_ca.ca_cert))
    assert cert.not_valid_after_utc == clock.now() + NINETY_DAYS
    assert issued.trust == cluster.root_ca.ca_cert


async def test_joining_records_the_certificate_in_the_node(
    ca: CertificateAuthority, store: Store
) -> None:
    issued = await join_worker(ca, store)
    record = store.get(Node, issued.node_id).certificate
    info = peer_of(issued)
    assert record is not None
    assert (record.role, record.serial, record.not_after) == (
        NodeRole.WORKER,
        f"{info.serial:x}",
        info.not_after,
    )
    # What the node trusts and who issued its certificate are the agent's to report.
    assert store.get(Node, issued.node_id).description.tls_info is None


async def test_each_join_makes_a_new_node(ca: CertificateAuthority, store: Store) -> None:
    first, second = await join_worker(ca, store), await join_worker(ca, store)
    assert first.node_id != second.node_id
    assert {node.id for node in store.all(Node)} == {first.node_id, second.node_id}


async def test_a_token_pasted_with_a_newline_still_joins(
    ca: CertificateAuthority, store: Store
) -> None:
    issued = await ca.join(cluster_of(store).join_tokens.worker + "\n", csr())
    assert store.find(Node, issued.node_id) is not None


async def test_the_certificate_lasts_the_clusters_node_cert_expiry(
    ca: CertificateAuthority, store: Store, clock: FakeClock
) -> None:
    spec = ClusterSpec(ca_config=CAConfig(node_cert_expiry=3600 * SECOND_NS))
    await update_cluster(store, spec=spec)
    issued = await join_worker(ca, store)
    assert peer_of(issued).not_after == clock.now() + timedelta(hours=1)


async def test_the_manager_token_makes_a_manager(ca: CertificateAuthority, store: Store) -> None:
    issued = await ca.join(cluster_of(store).join_tokens.manager, csr())
    assert peer_of(issued).role is NodeRole.MANAGER
    node = store.get(Node, issued.node_id)
    assert node.spec.role is NodeRole.MANAGER
    assert node.manager_status is not None
    assert not node.manager_status.leader


def _other_secret(tokens: JoinTokens) -> str:
    return str(JoinToken.parse(tokens.worker).rotated())


def _other_cluster(tokens: JoinTokens) -> str:
    return str(JoinToken.new(root_digest(new_root(FakeClock().now()).cert_pem)))


def _other_digest(tokens: JoinTokens) -> str:
    return str(JoinToken("0" * 50, JoinToken.parse(tokens.worker).secret))


@pytest.mark.parametrize(
    "make_token", [_other_secret, _other_cluster, _other_digest], ids=lambda f: f.__name__[1:]
)
async def test_a_token_that_is_not_the_clusters_is_refused(
    ca: CertificateAuthority, store: Store, make_token
) -> None:
    revision = store.revision
    with pytest.raises(
        InvalidSpec, match=r"^A valid join token is necessary to join this cluster$"
    ):
        await ca.join(make_token(cluster_of(store).join_tokens), csr())
    assert store.revision == revision


@pytest.mark.parametrize("token", ["", "hello", "SWMTKN-1-abc-def"])
async def test_a_malformed_token_is_refused(
    ca: CertificateAuthority, store: Store, token: str
) -> None:
    revision = store.revision
    with pytest.raises(InvalidSpec, match=r"^invalid join token$"):
        await ca.join(token, csr())
    assert store.revision == revision


async def test_a_join_with_a_bad_csr_commits_nothing(
    ca: CertificateAuthority, store: Store
) -> None:
    revision = store.revision
    with pytest.raises(InvalidSpec, match="invalid certificate signing request"):
        await ca.join(cluster_of(store).join_tokens.worker, "not a CSR")
    assert store.revision == revision
    assert store.all(Node) == []


async def test_a_rotated_worker_token_replaces_the_old_one(
    ca: CertificateAuthority, store: Store
) -> None:
    old = cluster_of(store).join_tokens
    new_worker = str(JoinToken.parse(old.worker).rotated())
    await update_cluster(store, join_tokens=old.replace(worker=new_worker))
    with pytest.raises(InvalidSpec, match=INVALID_TOKEN):
        await ca.join(old.worker, csr())
    assert store.find(Node, (await ca.join(new_worker, csr())).node_id) is not None


# The first manager's certificate


async def test_create_node_certificate_creates_the_node_with_a_manager_certificate(
    ca: CertificateAuthority, store: Store
) -> None:
    node = Node(id=new_id(), spec=NodeSpec(name="first", role=NodeRole.MANAGER))
    issued = await ca.create_node_certificate(node, csr())
    assert issued.node_id == node.id
    stored = store.get(Node, node.id)
    assert stored.spec == node.spec
    assert stored.certificate is not None
    assert stored.certificate.role == NodeRole.MANAGER
    cert = load(issued.certificate)
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-manager"]
    assert sorted(dns_names(cert)) == sorted(["swarm-manager", node.id, "swarm-ca"])
    info = peer_of(issued)
    assert (info.node_id, info.role, info.cluster_id) == (
        node.id,
        NodeRole.MANAGER,
        cluster_of(store).id,
    )


async def test_create_node_certificate_refuses_a_node_that_exists(
    ca: CertificateAuthority, store: Store
) -> None:
    node = Node(id=new_id(), spec=NodeSpec(role=NodeRole.MANAGER))
    await ca.create_node_certificate(node, csr())
    revision = store.revision
    with pytest.raises(NameConflict):
        await ca.create_node_certificate(node, csr())
    assert store.revision == revision


# Admission


async def test_a_member_is_admitted(ca: CertificateAuthority, store: Store) -> None:
    issued = await join_worker(ca, store)
    assert ca.admit(peer_of(issued)) == store.get(Node, issued.node_id)


def test_no_certificate_is_forbidden(ca: CertificateAuthority) -> None:
    with pytest.raises(Forbidden, match="a node certificate is required"):
        ca.admit(None)


async def test_a_removed_node_is_forbidden(ca: CertificateAuthority, store: Store) -> None:
    issued = await join_worker(ca, store)
    await store.commit([Op.delete(store.get(Node, issued.node_id))])
    with pytest.raises(Forbidden, match=f"node {issued.node_id} is not a member of this swarm"):
        ca.admit(peer_of(issued))


async def test_a_certificate_of_another_cluster_is_forbidden(
    ca: CertificateAuthority, store: Store
) -> None:
    issued = await join_worker(ca, store)
    stranger = dataclasses.replace(peer_of(issued), cluster_id=new_id())
    with pytest.raises(Forbidden, match="is not a member of this swarm"):
        ca.admit(stranger)


async def test_without_a_cluster_nobody_is_admitted(ca: CertificateAuthority, store: Store) -> None:
    issued = await join_worker(ca, store)
    await store.commit([Op.delete(cluster_of(store))])
    with pytest.raises(Forbidden):
        ca.admit(peer_of(issued))


# Renewal


async def test_renewal_certifies_the_new_key_for_the_same_node(
    ca: CertificateAuthority, store: Store, clock: FakeClock
) -> None:
    issued = await join_worker(ca, store)
    before = store.get(Node, issued.node_id)
    now = clock.now()
    key_pem, csr_pem = new_key_and_csr()
    renewed = await ca.renew(peer_of(issued), csr_pem)
    assert renewed.node_id == issued.node_id
    cert = load(renewed.certificate)
    assert spki(cert) == spki(load_key(key_pem))
    assert cert.serial_number != load(issued.certificate).serial_number
    assert peer_of(renewed).role is NodeRole.WORKER
    assert cert.not_valid_after_utc == now + NINETY_DAYS
    after = store.get(Node, issued.node_id)
    assert after.version.index > before.version.index
    assert after.spec == before.spec


async def test_renewal_counts_its_validity_from_now(
    ca: CertificateAuthority, store: Store, clock: FakeClock
) -> None:
    issued = await join_worker(ca, store)
    await clock.advance(30 * 24 * 3600)
    renewed = await ca.renew(peer_of(issued), csr())
    assert peer_of(renewed).not_after == clock.now() + NINETY_DAYS
    assert peer_of(renewed).not_after == peer_of(issued).not_after + timedelta(days=30)


async def test_renewal_gives_the_role_the_node_has_now(
    ca: CertificateAuthority, store: Store
) -> None:
    issued = await join_worker(ca, store)
    node = store.get(Node, issued.node_id)
    await store.commit([Op.update(node.replace(spec=node.spec.replace(role=NodeRole.MANAGER)))])
    renewed = await ca.renew(peer_of(issued), csr())
    cert = load(renewed.certificate)
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-manager"]
    assert "swarm-manager" in dns_names(cert)
    assert peer_of(renewed).role is NodeRole.MANAGER
    assert store.get(Node, issued.node_id).spec.role is NodeRole.MANAGER


async def test_a_demoted_node_renews_as_a_worker(ca: CertificateAuthority, store: Store) -> None:
    node = Node(id=new_id(), spec=NodeSpec(role=NodeRole.MANAGER))
    issued = await ca.create_node_certificate(node, csr())
    stored = store.get(Node, node.id)
    await store.commit([Op.update(stored.replace(spec=stored.spec.replace(role=NodeRole.WORKER)))])
    cert = load((await ca.renew(peer_of(issued), csr())).certificate)
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-worker"]
    assert "swarm-manager" not in dns_names(cert)


@pytest.mark.parametrize("removed", [False, True], ids=["no-certificate", "removed-node"])
async def test_a_refused_renewal_commits_nothing(
    ca: CertificateAuthority, store: Store, removed: bool
) -> None:
    issued = await join_worker(ca, store)
    peer: CertificateInfo | None = None
    if removed:
        peer = peer_of(issued)
        await store.commit([Op.delete(store.get(Node, issued.node_id))])
    revision = store.revision
    with pytest.raises(Forbidden):
        await ca.renew(peer, csr())
    assert store.revision == revision


async def test_a_renewal_with_a_bad_csr_commits_nothing(
    ca: CertificateAuthority, store: Store
) -> None:
    issued = await join_worker(ca, store)
    revision = store.revision
    with pytest.raises(InvalidSpec, match="invalid certificate signing request"):
        await ca.renew(peer_of(issued), "not a CSR")
    assert store.revision == revision


# Root rotation


def test_signer_and_trust_without_a_rotation(store: Store) -> None:
    root_ca = cluster_of(store).root_ca
    assert signer_of(root_ca).cert_pem == root_ca.ca_cert
    assert signer_of(root_ca).key_pem == root_ca.ca_key
    assert trust_of(root_ca) == root_ca.ca_cert


async def test_signer_and_trust_during_a_rotation(store: Store, clock: FakeClock) -> None:
    new_cert = await rotate_root(store, clock)
    root_ca = cluster_of(store).root_ca
    assert signer_of(root_ca).cert_pem == new_cert
    assert signer_of(root_ca).key_pem == root_ca.new_ca_key
    assert trust_of(root_ca) == root_ca.ca_cert + new_cert


async def test_a_renewal_during_a_rotation_is_signed_by_the_new_root(
    ca: CertificateAuthority, store: Store, clock: FakeClock
) -> None:
    issued = await join_worker(ca, store)
    old_cert = cluster_of(store).root_ca.ca_cert
    new_cert = await rotate_root(store, clock)
    renewed = await ca.renew(peer_of(issued), csr())
    cert = load(renewed.certificate)
    cert.verify_directly_issued_by(load(new_cert))
    # Both roots are named swarm-ca: only the signature tells them apart.
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(load(old_cert))
    assert renewed.trust == old_cert + new_cert
    assert peer_of(renewed).issuer_subject == tls_info(new_cert).cert_issuer_subject
    # The certificate travels with the new root cross-signed by the old one: a node that
    # trusts only the old root can still verify it.
    chain = x509.load_pem_x509_certificates(renewed.certificate.encode())
    assert len(chain) == 2
    cert.verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(load(old_cert))


async def test_a_join_during_a_rotation_is_signed_by_the_new_root_and_trusts_both(
    ca: CertificateAuthority, store: Store, clock: FakeClock
) -> None:
    old_cert = cluster_of(store).root_ca.ca_cert
    new_cert = await rotate_root(store, clock)
    # The tokens still name the old root: nodes check the root they are first given.
    issued = await join_worker(ca, store)
    load(issued.certificate).verify_directly_issued_by(load(new_cert))
    assert issued.trust == old_cert + new_cert
    assert ca.root() == old_cert
