"""The manager's CA: it admits new nodes with a join token, renews certificates, and says
whether a presented certificate still belongs to the swarm.

The root and its key live in the store's Cluster object (``RootCA``), like SwarmKit's, so the
store's encryption at rest covers the key. A certificate's role is the node's role in the store
at the time it is issued, and the node keeps a record of it (``Node.certificate``), written in
the same commit with the manager status that role gives it (``manager_status_of``). During a
root rotation the new root signs, and each certificate travels with the new root cross-signed
by the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from swarmlet.clock import Clock
from swarmlet.errors import Forbidden, InvalidSpec, Unavailable
from swarmlet.ids import new_id
from swarmlet.manager.store import Store, Tx
from swarmlet.models import (
    SECOND_NS,
    Cluster,
    JoinTokens,
    ManagerStatus,
    Node,
    NodeCertificate,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
    RootCA,
)
from swarmlet.pki import CertificateInfo, JoinToken, read_certificate, root_digest
from swarmlet.pki.ca import Issuer, issue, new_root

INVALID_TOKEN = "A valid join token is necessary to join this cluster"
NOT_A_SWARM = "This node is not part of a swarm"


@dataclass(frozen=True)
class Issued:
    node_id: str
    certificate: str
    # Every root the node must trust (two during a root rotation).
    trust: str


def new_cluster_root(now: datetime) -> tuple[RootCA, JoinTokens]:
    """A new root for a new cluster, and join tokens pinned to it."""
    root = new_root(now)
    digest = root_digest(root.cert_pem)
    tokens = JoinTokens(worker=str(JoinToken.new(digest)), manager=str(JoinToken.new(digest)))
    return RootCA(ca_cert=root.cert_pem, ca_key=root.key_pem), tokens


def trust_of(root_ca: RootCA) -> str:
    return root_ca.ca_cert + root_ca.new_ca_cert


def signer_of(root_ca: RootCA) -> Issuer:
    """During a rotation the new root signs, so that every renewal moves a node to it."""
    if root_ca.new_ca_cert:
        return Issuer(root_ca.new_ca_cert, root_ca.new_ca_key)
    return Issuer(root_ca.ca_cert, root_ca.ca_key)


def manager_status_of(node: Node) -> ManagerStatus | None:
    """A node's manager status once it holds a certificate of its role: a manager certificate
    makes it a reachable manager (the leader keeps its own status), a worker's takes the
    status away. What ``docker node ls`` shows as MANAGER STATUS."""
    if node.spec.role is not NodeRole.MANAGER:
        return None
    current = node.manager_status
    if current is not None and current.leader:
        return current
    addr = f"{node.status.addr}:2377" if node.status.addr else ""
    return ManagerStatus(leader=False, reachability="reachable", addr=addr)


def _cluster_of(reader: Store | Tx) -> Cluster:
    cluster = reader.cluster()
    if cluster is None or not cluster.root_ca.ca_cert:
        raise Unavailable(NOT_A_SWARM)
    return cluster


def _member(reader: Store | Tx, peer: CertificateInfo | None) -> Node:
    """The node a (verified) client certificate names. Raises Forbidden when there is no
    certificate or its node was removed from the swarm."""
    if peer is None:
        raise Forbidden("a node certificate is required")
    node = reader.find(Node, peer.node_id)
    cluster = reader.cluster()
    if node is None or cluster is None or peer.cluster_id != cluster.id:
        raise Forbidden(f"node {peer.node_id} is not a member of this swarm")
    return node


def role_of_token(cluster: Cluster, token: str) -> NodeRole:
    """The role a join token gives. Raises InvalidSpec for a token that is not the
    cluster's."""
    JoinToken.parse(token)
    worker = JoinToken.parse(cluster.join_tokens.worker)
    manager = JoinToken.parse(cluster.join_tokens.manager)
    if worker.matches(token):
        return NodeRole.WORKER
    if manager.matches(token):
        # The node then joins the swarm's etcd (the store moves there from SQLite first).
        return NodeRole.MANAGER
    raise InvalidSpec(INVALID_TOKEN)


class CertificateAuthority:
    """Each certificate is issued inside the transaction that records it, from the cluster
    and the node as that transaction reads them: the role and the root it is signed with are
    the ones the store holds when the record is written."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def root(self) -> str:
        """The root a join token's digest names."""
        return _cluster_of(self._store).root_ca.ca_cert

    async def join(self, token: str, csr_pem: str) -> Issued:
        """A new node with the role its token gives, and its first certificate.

        Raises InvalidSpec for a token that is not the cluster's or a malformed CSR.
        """
        node_id = new_id()

        def joined(tx: Tx) -> Issued:
            cluster = _cluster_of(tx)
            node = Node(
                id=node_id,
                spec=NodeSpec(role=role_of_token(cluster, token)),
                status=NodeStatus(state=NodeState.UNKNOWN, message="waiting for its first session"),
            )
            return self._issue(tx, cluster, node, csr_pem, create=True)

        return (await self._store.update(joined)).value

    async def create_node_certificate(self, node: Node, csr_pem: str) -> Issued:
        """The first certificate of a node made outside a join (the first manager's, at init);
        the node is created with it."""
        commit = await self._store.update(
            lambda tx: self._issue(tx, _cluster_of(tx), node, csr_pem, create=True)
        )
        return commit.value

    async def renew(self, peer: CertificateInfo | None, csr_pem: str) -> Issued:
        """A new certificate for the node a valid certificate names, with its current role."""

        def renewed(tx: Tx) -> Issued:
            node = _member(tx, peer)
            return self._issue(tx, _cluster_of(tx), node, csr_pem, create=False)

        return (await self._store.update(renewed)).value

    def admit(self, peer: CertificateInfo | None) -> Node:
        """The node a (verified) client certificate names. Raises Forbidden when there is no
        certificate or its node was removed from the swarm."""
        return _member(self._store, peer)

    def _issue(self, tx: Tx, cluster: Cluster, node: Node, csr_pem: str, *, create: bool) -> Issued:
        signer = signer_of(cluster.root_ca)
        expiry = timedelta(seconds=cluster.spec.ca_config.node_cert_expiry / SECOND_NS)
        certificate = issue(
            signer,
            csr_pem,
            node_id=node.id,
            role=node.spec.role,
            cluster_id=cluster.id,
            expiry=expiry,
            now=self._clock.now(),
        )
        info = read_certificate(certificate)
        record = NodeCertificate(
            role=node.spec.role, serial=f"{info.serial:x}", not_after=info.not_after
        )
        recorded = node.replace(certificate=record, manager_status=manager_status_of(node))
        if create:
            tx.create(recorded)
        else:
            tx.update(recorded)
        chain = certificate + cluster.root_ca.cross_signed
        return Issued(node.id, chain, trust_of(cluster.root_ca))
