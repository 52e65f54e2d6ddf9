"""The root CA and the certificates it issues, in Swarm's shapes, made with ``cryptography``.

Only a manager (and a process asking for a certificate, see ``swarmlet.pki.keygen``) imports
this module: what every node reads of a certificate is in ``swarmlet.pki.certificate``.

A node certificate names the node ID (CN), its role (OU ``swarm-manager`` or ``swarm-worker``)
and the cluster (O), and carries the role as a DNS name so that an agent can check it is talking
to a manager (``server_hostname="swarm-manager"``). The CA decides all of that; a CSR only
contributes its public key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from swarmlet.errors import InvalidSpec
from swarmlet.models import NodeRole
from swarmlet.pki.certificate import ROLE_UNITS

ROOT_NAME = "swarm-ca"
ROOT_EXPIRY = timedelta(days=20 * 365)
# Issued certificates start an hour back, so that a node whose clock is a little behind the
# manager's accepts them at once (Swarm does the same).
BACKDATE = timedelta(hours=1)
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class Issuer:
    """A CA certificate and its private key, both PEM."""

    cert_pem: str
    key_pem: str


def _name(common_name: str, unit: str = "", organization: str = "") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def new_root(now: datetime) -> Issuer:
    """A new self-signed root (ECDSA P-256, like Swarm's), valid for 20 years."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(ROOT_NAME)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issuer(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def new_key_and_csr() -> tuple[str, str]:
    """A node's new private key and a CSR for it (both PEM). The CA fills in the names."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name("swarmlet-node"))
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM).decode()


def _load_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise InvalidSpec("invalid certificate signing request: not a PEM CSR") from exc
    try:
        valid = csr.is_signature_valid
    except InvalidSignature:
        valid = False
    if not valid:
        raise InvalidSpec("invalid certificate signing request: bad signature")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
        return csr
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size >= 256:
        return csr
    raise InvalidSpec("invalid certificate signing request: use an ECDSA P-256 or RSA-2048 key")


def issue(
    issuer: Issuer,
    csr_pem: str,
    *,
    node_id: str,
    role: NodeRole,
    cluster_id: str,
    expiry: timedelta,
    now: datetime,
) -> str:
    """A node certificate for the CSR's key, signed by ``issuer``; PEM.

    Raises InvalidSpec for a malformed CSR.
    """
    csr = _load_csr(csr_pem)
    ca_cert = x509.load_pem_x509_certificate(issuer.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(issuer.key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InvalidSpec("the CA key must be an ECDSA key")
    unit = ROLE_UNITS[role]
    # Managers also answer as the CA (Swarm's "swarm-ca" name) since they issue certificates.
    names = [unit, node_id] + ([ROOT_NAME] if role == NodeRole.MANAGER else [])
    cert = sign_leaf(
        ca_cert,
        ca_key,
        subject=_name(node_id, unit, cluster_id),
        public_key=csr.public_key(),
        names=[x509.DNSName(name) for name in names],
        expiry=expiry,
        now=now,
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    names: list[x509.GeneralName],
    expiry: timedelta,
    now: datetime,
) -> x509.Certificate:
    """A certificate signed by the root, for servers and clients alike (every certificate
    the swarm issues is both): backdated by BACKDATE, with ``names`` as its SANs."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + expiry)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def cross_sign(old: Issuer, new: Issuer, now: datetime) -> str:
    """The new root's name and key signed by the old root: an intermediate that lets a node
    trusting only the old root verify certificates the new root issues (Swarm's way through
    a root rotation). PEM."""
    old_cert = x509.load_pem_x509_certificate(old.cert_pem.encode())
    old_key = serialization.load_pem_private_key(old.key_pem.encode(), password=None)
    new_cert = x509.load_pem_x509_certificate(new.cert_pem.encode())
    if not isinstance(old_key, ec.EllipticCurvePrivateKey):
        raise InvalidSpec("the CA key must be an ECDSA key")
    cert = (
        x509.CertificateBuilder()
        .subject_name(new_cert.subject)
        .issuer_name(old_cert.subject)
        .public_key(new_cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(new_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(new_cert.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(old_key.public_key()),
            critical=False,
        )
        .sign(old_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
