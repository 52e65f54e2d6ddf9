"""The root CA and the node certificates it issues, checked with ``cryptography.x509``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from swarmlet.errors import InvalidSpec
from swarmlet.models import NodeRole
from swarmlet.pki.ca import new_key_and_csr, new_root
from tests.pki.builders import (
    EXPIRY,
    NOW,
    csr_of,
    dns_names,
    issued,
    load,
    load_key,
    rsa_csr,
    spki,
    subject,
    with_bad_signature,
)

ROOT = new_root(NOW)


def issue_for(role: NodeRole, csr_pem: str | None = None, node_id: str = "node-1") -> str:
    return issued(ROOT, role, csr_pem, node_id)


# The root


def test_the_root_is_a_self_signed_p256_ca_named_swarm_ca() -> None:
    root = load(ROOT.cert_pem)
    assert root.subject == root.issuer
    assert subject(root, NameOID.COMMON_NAME) == ["swarm-ca"]
    root.verify_directly_issued_by(root)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    public = root.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)


def test_the_root_is_valid_for_twenty_years() -> None:
    root = load(ROOT.cert_pem)
    assert root.not_valid_before_utc <= NOW
    assert root.not_valid_after_utc == NOW + timedelta(days=20 * 365)


def test_the_root_key_is_the_key_of_the_root_certificate() -> None:
    assert spki(load_key(ROOT.key_pem)) == spki(load(ROOT.cert_pem))


def test_every_root_has_its_own_key_and_serial() -> None:
    first, second = load(ROOT.cert_pem), load(new_root(NOW).cert_pem)
    assert spki(first) != spki(second)
    assert first.serial_number != second.serial_number


# Issued certificates


def test_a_worker_certificate_names_the_node_its_role_and_the_cluster() -> None:
    cert = load(issue_for(NodeRole.WORKER, node_id="abc123"))
    assert subject(cert, NameOID.COMMON_NAME) == ["abc123"]
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-worker"]
    assert subject(cert, NameOID.ORGANIZATION_NAME) == ["cluster-1"]
    assert dns_names(cert) == ["swarm-worker", "abc123"]
    assert cert.issuer == load(ROOT.cert_pem).subject


def test_a_manager_certificate_also_answers_as_a_manager_and_as_the_ca() -> None:
    cert = load(issue_for(NodeRole.MANAGER, node_id="abc123"))
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-manager"]
    assert sorted(dns_names(cert)) == ["abc123", "swarm-ca", "swarm-manager"]


def test_a_certificate_starts_an_hour_back_and_lasts_the_expiry() -> None:
    cert = load(issue_for(NodeRole.WORKER))
    assert cert.not_valid_before_utc == NOW - timedelta(hours=1)
    assert cert.not_valid_after_utc == NOW + EXPIRY


def test_a_certificate_is_signed_by_the_root() -> None:
    cert = load(issue_for(NodeRole.WORKER))
    cert.verify_directly_issued_by(load(ROOT.cert_pem))
    public = load(ROOT.cert_pem).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    public.verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )


def test_a_certificate_does_not_verify_against_another_root() -> None:
    cert = load(issue_for(NodeRole.WORKER))
    other = load(new_root(NOW).cert_pem)
    public = other.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    with pytest.raises(InvalidSignature):
        public.verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )


def test_a_certificate_carries_the_key_of_the_csr() -> None:
    key_pem, csr_pem = new_key_and_csr()
    assert spki(load(issue_for(NodeRole.WORKER, csr_pem))) == spki(load_key(key_pem))


def test_a_certificate_is_an_end_entity_for_servers_and_clients() -> None:
    cert = load(issue_for(NodeRole.WORKER))
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_the_subject_and_names_a_csr_asks_for_are_ignored() -> None:
    asked = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "someone-else"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "swarm-manager"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "another-cluster"),
        ]
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr_pem = csr_of(key, asked, "swarm-manager", "swarm-ca")
    cert = load(issue_for(NodeRole.WORKER, csr_pem, node_id="node-1"))
    assert subject(cert, NameOID.COMMON_NAME) == ["node-1"]
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-worker"]
    assert subject(cert, NameOID.ORGANIZATION_NAME) == ["cluster-1"]
    assert dns_names(cert) == ["swarm-worker", "node-1"]


def test_an_rsa_2048_csr_is_accepted() -> None:
    cert = load(issue_for(NodeRole.WORKER, rsa_csr(2048)))
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]


def _p192_csr() -> str:
    return csr_of(ec.generate_private_key(ec.SECP192R1()))


@pytest.mark.parametrize(
    ("make_csr", "reason"),
    [
        (lambda: "not a certificate request", "not a PEM CSR"),
        (lambda: "", "not a PEM CSR"),
        (lambda: ROOT.cert_pem, "not a PEM CSR"),
        (lambda: with_bad_signature(new_key_and_csr()[1]), "bad signature"),
        (lambda: rsa_csr(1024), "ECDSA P-256 or RSA-2048"),
        (_p192_csr, "ECDSA P-256 or RSA-2048"),
    ],
    ids=["garbage", "empty", "a-certificate", "bad-signature", "rsa-1024", "p192"],
)
def test_a_bad_csr_is_refused(make_csr, reason: str) -> None:
    with pytest.raises(InvalidSpec, match=f"invalid certificate signing request: .*{reason}"):
        issue_for(NodeRole.WORKER, make_csr())


def test_the_hash_of_the_signature_is_sha256() -> None:
    cert = load(issue_for(NodeRole.WORKER))
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
