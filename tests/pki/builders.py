"""Certificates, CSRs and identities for the PKI tests, built with ``cryptography`` directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from swarmlet.ids import new_id
from swarmlet.models import NodeRole
from swarmlet.pki import Credentials
from swarmlet.pki.ca import Issuer, issue, new_key_and_csr

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
EXPIRY = timedelta(days=90)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def load(cert_pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_pem.encode())


def load_key(key_pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return key


def spki(key: x509.Certificate | PrivateKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate's or a private key's public key."""
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def dns_names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in cert.subject.get_attributes_for_oid(oid)]


def csr_of(key: PrivateKey, name: x509.Name | None = None, *names: str) -> str:
    """A CSR for ``key`` asking for the subject ``name`` and the DNS names ``names``."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a node")])
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def rsa_csr(bits: int) -> str:
    return csr_of(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def with_bad_signature(csr_pem: str) -> str:
    """The CSR with the last byte of its signature changed; still well-formed DER."""
    der = bytearray(
        x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    )
    der[-1] ^= 0x01
    altered = x509.load_der_x509_csr(bytes(der))
    return altered.public_bytes(serialization.Encoding.PEM).decode()


def node_credentials(
    folder: Path,
    issuer: Issuer,
    role: NodeRole,
    *,
    node_id: str | None = None,
    cluster_id: str = "cluster-1",
    trust_pem: str | None = None,
) -> Credentials:
    """Credentials of a node, in date now (for real handshakes), saved in ``folder``."""
    key_pem, csr_pem = new_key_and_csr()
    cert_pem = issue(
        issuer,
        csr_pem,
        node_id=node_id or new_id(),
        role=role,
        cluster_id=cluster_id,
        expiry=DAY,
        now=datetime.now(UTC),
    )
    credentials = Credentials(folder)
    credentials.save(trust_pem=trust_pem or issuer.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    return credentials


def issued(
    issuer: Issuer, role: NodeRole, csr_pem: str | None = None, node_id: str = "node-1"
) -> str:
    """A certificate ``issuer`` makes for the node ``node_id`` of cluster-1, issued at NOW for
    EXPIRY, for ``csr_pem`` (a new key's, by default)."""
    return issue(
        issuer,
        new_key_and_csr()[1] if csr_pem is None else csr_pem,
        node_id=node_id,
        role=role,
        cluster_id="cluster-1",
        expiry=EXPIRY,
        now=NOW,
    )
