"""Moving nodes to new certificates: when a node's role changes, and through a root rotation.

A rotation (``docker swarm ca --rotate``) makes a new root and signs it with the old one. From
then on every certificate is issued by the new root and sent with that cross-signed
intermediate, so nodes that trust only the old root still accept it; every node is told to
trust both roots and to renew. When every node reports a certificate from the new root, the
new root becomes the only one: join tokens take its digest, and nodes are told to trust it
alone. A node that never renews (a host that is down) holds the rotation open, as in Swarm.
"""

from __future__ import annotations

import logging
from datetime import datetime

from swarmlet.clock import Clock
from swarmlet.errors import SwarmletError
from swarmlet.manager.ca.authority import trust_of
from swarmlet.manager.controller import Controller
from swarmlet.manager.store import Event, Store, Tx
from swarmlet.models import Cluster, JoinTokens, Node, RootCA
from swarmlet.pki import JoinToken, root_digest, tls_info
from swarmlet.pki.ca import Issuer, cross_sign, new_root
from swarmlet.protocol import Certificates

log = logging.getLogger(__name__)


def start_rotation(root_ca: RootCA, now: datetime) -> RootCA:
    """A rotation to a new root (replacing one in progress, as Swarm does)."""
    new = new_root(now)
    cross_signed = cross_sign(Issuer(root_ca.ca_cert, root_ca.ca_key), new, now)
    return root_ca.replace(
        new_ca_cert=new.cert_pem, new_ca_key=new.key_pem, cross_signed=cross_signed
    )


def _issued_by(node: Node, root_pem: str) -> bool:
    reported = node.description.tls_info
    wanted = tls_info(root_pem)
    return reported is not None and (
        reported.cert_issuer_public_key == wanted.cert_issuer_public_key
        and reported.cert_issuer_subject == wanted.cert_issuer_subject
    )


def finish_rotation(cluster: Cluster, nodes: list[Node]) -> Cluster | None:
    """The cluster with the new root alone, once every node has a certificate from it."""
    root_ca = cluster.root_ca
    if not root_ca.new_ca_cert or not all(_issued_by(node, root_ca.new_ca_cert) for node in nodes):
        return None
    digest = root_digest(root_ca.new_ca_cert)
    tokens = cluster.join_tokens
    return cluster.replace(
        root_ca=RootCA(ca_cert=root_ca.new_ca_cert, ca_key=root_ca.new_ca_key),
        join_tokens=JoinTokens(
            worker=str(JoinToken(digest, JoinToken.parse(tokens.worker).secret)),
            manager=str(JoinToken(digest, JoinToken.parse(tokens.manager).secret)),
        ),
    )


def certificate_update(node: Node, root_ca: RootCA) -> Certificates | None:
    """What a node must be told, if anything: the roots to trust, and whether to renew."""
    trust = trust_of(root_ca)
    reported = node.description.tls_info
    role_changed = node.certificate is not None and node.certificate.role != node.spec.role
    rotating = bool(root_ca.new_ca_cert) and not _issued_by(node, root_ca.new_ca_cert)
    if role_changed or rotating or reported is None or reported.trust_root != trust:
        return Certificates(trust=trust, renew=role_changed or rotating)
    return None


class RootRotation(Controller):
    """Ends a rotation once every node has moved to the new root."""

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._dirty = False

    def start(self) -> None:
        self._dirty = True

    def mark(self, event: Event) -> None:
        if issubclass(event.kind, Cluster | Node):
            self._dirty = True

    async def act(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        try:
            commit = await self.write(_finish)
        except SwarmletError as exc:
            log.info("root rotation: commit failed, deciding again: %s", exc)
            self._dirty = True
        else:
            if commit.objects:
                log.info("root rotation finished: every node has a certificate from the new root")


def _finish(tx: Tx) -> None:
    """End the rotation if every node has moved to the new root."""
    cluster = tx.cluster()
    if cluster is None:
        return
    finished = finish_rotation(cluster, tx.all(Node))
    if finished is not None:
        tx.update(finished)
