"""The member's TLS: a certificate from the cluster's root, and the files etcd reads.

The member's certificate serves both its ports and is its client certificate towards its
peers and its own client (the store's backend, later). It is issued as a node certificate is
(``swarmlet.pki.ca.issue``: ECDSA P-256, backdated an hour, the signer of the moment during a
root rotation, with the cross-signed root after it), with other names: CN ``etcd-<node ID>``
(no node has such an ID, so it opens nothing on the manager's port), OU ``swarm-etcd``, O the
cluster, and as names the node's address and loopback (IP SANs, which peers and clients
check) and ``swarm-etcd`` (``config.MEMBER_NAME``), which etcd demands of every peer.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from swarmlet.errors import InvalidSpec
from swarmlet.manager.ca.authority import signer_of, trust_of
from swarmlet.manager.etcd.config import LOOPBACK, MEMBER_NAME, MemberConfig
from swarmlet.models import RootCA
from swarmlet.pki.ca import sign_leaf
from swarmlet.pki.credentials import write_private


@dataclass(frozen=True)
class MemberTLS:
    cert_pem: str  # the member's certificate, then the cross-signed root during a rotation
    key_pem: str
    trust_pem: str  # every root of the cluster


def member_tls(
    root_ca: RootCA,
    *,
    node_id: str,
    cluster_id: str,
    address: str,
    expiry: timedelta,
    now: datetime,
) -> MemberTLS:
    """A new key and a certificate for the member of ``node_id`` at ``address``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem, trust_pem = member_certificate(
        root_ca,
        key.public_key(),
        node_id=node_id,
        cluster_id=cluster_id,
        address=address,
        expiry=expiry,
        now=now,
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return MemberTLS(cert_pem, key_pem, trust_pem)


def member_certificate_for_csr(
    root_ca: RootCA,
    csr_pem: str,
    *,
    node_id: str,
    cluster_id: str,
    address: str,
    expiry: timedelta,
    now: datetime,
) -> tuple[str, str]:
    """The certificate of a joining manager's member, for the key of its CSR (the key never
    leaves the joiner): the certificate (with the cross-signed root during a rotation) and
    the trust. Raises InvalidSpec for a CSR that is not one, or not signed by its key."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature) as exc:
        raise InvalidSpec("invalid certificate signing request for an etcd member") from exc
    key = csr.public_key()
    if not valid or not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidSpec("an etcd member's CSR must be signed by its ECDSA key")
    return member_certificate(
        root_ca,
        key,
        node_id=node_id,
        cluster_id=cluster_id,
        address=address,
        expiry=expiry,
        now=now,
    )


def member_certificate(
    root_ca: RootCA,
    public_key: ec.EllipticCurvePublicKey,
    *,
    node_id: str,
    cluster_id: str,
    address: str,
    expiry: timedelta,
    now: datetime,
) -> tuple[str, str]:
    """The member's certificate for ``public_key`` (then the cross-signed root during a
    rotation), and every root of the cluster (the trust)."""
    if not root_ca.ca_cert:
        raise InvalidSpec("the cluster has no root CA")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise InvalidSpec(f"an etcd member needs an IP address, not {address!r}") from exc
    addresses = list(dict.fromkeys([ip, ipaddress.ip_address(LOOPBACK)]))
    signer = signer_of(root_ca)
    ca_cert = x509.load_pem_x509_certificate(signer.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(signer.key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InvalidSpec("the CA key must be an ECDSA key")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"etcd-{node_id}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, MEMBER_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
        ]
    )
    cert = sign_leaf(
        ca_cert,
        ca_key,
        subject=subject,
        public_key=public_key,
        names=[x509.DNSName(MEMBER_NAME)] + [x509.IPAddress(a) for a in addresses],
        expiry=expiry,
        now=now,
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return cert_pem + root_ca.cross_signed, trust_of(root_ca)


def write_member_tls(config: MemberConfig, tls: MemberTLS) -> None:
    """The three files etcd reads, each 0600 (replaced whole), in a 0700 folder beside the
    data folder."""
    config.tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config.tls_dir.chmod(0o700)
    write_private(config.key_path, tls.key_pem)
    write_private(config.cert_path, tls.cert_pem)
    write_private(config.trust_path, tls.trust_pem)


@dataclass(frozen=True)
class ClientTLS:
    """What a client presents and trusts (PEM): the cluster's roots, and the member's
    certificate and key (none: a client the member refuses)."""

    trust: bytes
    cert: bytes | None = None
    key: bytes | None = None


def client_tls(config: MemberConfig) -> ClientTLS:
    """What the member's own clients (its manager's store and election) present and trust:
    the member's certificate, and the cluster's roots alone."""
    return ClientTLS(
        trust=config.trust_path.read_bytes(),
        cert=config.cert_path.read_bytes(),
        key=config.key_path.read_bytes(),
    )


def client_ssl_context(config: MemberConfig) -> ssl.SSLContext:
    """A client of the member: trusts the cluster's roots alone, presents the member's
    certificate, and checks the server's address against its IP SAN."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(config.trust_path))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.cert_path, config.key_path)
    return context
