"""Reading certificates without ``cryptography`` (swarmlet.pki.certificate and .der), checked
against what ``cryptography`` reads of the same certificates."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from swarmlet.errors import InvalidSpec
from swarmlet.models import NodeRole, TLSInfo
from swarmlet.pki import node_tls_info, read_certificate, root_digest, tls_info
from swarmlet.pki.ca import Issuer, cross_sign, new_key_and_csr, new_root
from tests.pki.builders import EXPIRY, NOW, issued, load

ROOT = new_root(NOW)
KEY = ec.generate_private_key(ec.SECP256R1())


def issue_for(
    role: NodeRole, csr_pem: str | None = None, node_id: str = "node-1", issuer: Issuer = ROOT
) -> str:
    return issued(issuer, role, csr_pem, node_id)


def signed_by(leaf_pem: str, candidate_pem: str) -> bool:
    try:
        load(leaf_pem).verify_directly_issued_by(load(candidate_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def tls_info_by_signature(node_pem: str, trust_pem: str) -> TLSInfo:
    """The oracle: the issuer found by checking signatures with ``cryptography``."""
    certificates = x509.load_pem_x509_certificates(node_pem.encode())
    leaf, candidates = certificates[0], certificates[1:]
    candidates += x509.load_pem_x509_certificates(trust_pem.encode())
    for candidate in candidates:
        try:
            leaf.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        key = candidate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return TLSInfo(
            trust_root=trust_pem,
            cert_issuer_subject=base64.b64encode(candidate.subject.public_bytes()).decode(),
            cert_issuer_public_key=base64.b64encode(key).decode(),
        )
    return TLSInfo(trust_root=trust_pem)


# Reading a certificate


def test_read_certificate_reads_pem_and_der_alike() -> None:
    pem = issue_for(NodeRole.MANAGER, node_id="node-7")
    cert = load(pem)
    info = read_certificate(pem)
    assert read_certificate(cert.public_bytes(serialization.Encoding.DER)) == info
    assert (info.node_id, info.role, info.cluster_id) == ("node-7", NodeRole.MANAGER, "cluster-1")
    assert info.serial == cert.serial_number
    assert (info.not_before, info.not_after) == (NOW - timedelta(hours=1), NOW + EXPIRY)
    assert base64.b64decode(info.issuer_subject) == load(ROOT.cert_pem).subject.public_bytes()


def test_read_certificate_takes_the_certificate_before_a_key() -> None:
    key_pem, csr_pem = new_key_and_csr()
    pem = issue_for(NodeRole.WORKER, csr_pem, node_id="node-8")
    assert read_certificate(pem + key_pem).node_id == "node-8"
    assert read_certificate("text before it\n" + pem).node_id == "node-8"


def test_a_certificate_without_a_swarm_role_reads_as_no_role() -> None:
    info = read_certificate(ROOT.cert_pem)
    assert (info.node_id, info.role, info.cluster_id) == ("swarm-ca", None, "")


# Names of 1 to 64 UTF-8 bytes, as X.509 bounds them.
_names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=16)
# UTCTime up to 2049 and GeneralizedTime from 2050 (X.509 has no times before 1950).
_times = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    common_name=_names,
    unit=st.sampled_from(["swarm-manager", "swarm-worker", "other", ""]),
    organization=st.one_of(st.just(""), _names),
    serial=st.integers(min_value=1, max_value=2**159 - 1),
    not_before=_times,
    lasting=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=36500)),
    printable=st.booleans(),
)
@example(
    common_name="n",
    unit="swarm-worker",
    organization="",
    serial=1,
    not_before=datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
    lasting=timedelta(seconds=1),  # the last UTCTime, then the first GeneralizedTime
    printable=False,
)
def test_read_certificate_reads_what_cryptography_reads(
    common_name: str,
    unit: str,
    organization: str,
    serial: int,
    not_before: datetime,
    lasting: timedelta,
    printable: bool,
) -> None:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    issuer = [x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ")]  # a PrintableString
    if printable:
        issuer.append(x509.NameAttribute(NameOID.COMMON_NAME, "an issuer"))
    not_after = min(not_before + lasting, datetime(9999, 1, 1, tzinfo=UTC))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(x509.Name(issuer))
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(KEY, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    info = read_certificate(pem)
    assert info.node_id == common_name
    assert info.role == {"swarm-manager": NodeRole.MANAGER, "swarm-worker": NodeRole.WORKER}.get(
        unit
    )
    assert info.cluster_id == organization
    assert info.serial == cert.serial_number
    assert (info.not_before, info.not_after) == (
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )
    assert base64.b64decode(info.issuer_subject) == cert.issuer.public_bytes()


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        b"",
        b"\x30\x03\x02\x01\x00",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
    ],
)
def test_read_certificate_refuses_what_is_not_a_certificate(garbage: str | bytes) -> None:
    with pytest.raises(InvalidSpec, match="invalid certificate"):
        read_certificate(garbage)


_DER = load(issue_for(NodeRole.WORKER)).public_bytes(serialization.Encoding.DER)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_with_invalid_spec_only(data: bytes) -> None:
    with contextlib.suppress(InvalidSpec):
        read_certificate(data)


@settings(max_examples=500, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(_DER) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=1, max_value=len(_DER)),
)
def test_a_damaged_certificate_reads_or_is_refused_with_invalid_spec(
    position: int, value: int, cut: int
) -> None:
    damaged = bytearray(_DER)
    damaged[position] = value
    for data in (bytes(damaged), _DER[:cut]):
        with contextlib.suppress(InvalidSpec):
            read_certificate(data)
    pem = "-----BEGIN CERTIFICATE-----\n" + base64.b64encode(bytes(damaged)).decode()
    with contextlib.suppress(InvalidSpec):
        node_tls_info(pem + "\n-----END CERTIFICATE-----\n", ROOT.cert_pem)


# The root's digest and TLSInfo


def test_the_digest_is_the_sha256_of_the_pem_in_50_base36_digits() -> None:
    digest = root_digest(ROOT.cert_pem)
    assert len(digest) == 50
    assert set(digest) <= set("0123456789abcdefghijklmnopqrstuvwxyz")
    expected = int.from_bytes(hashlib.sha256(ROOT.cert_pem.encode()).digest())
    assert int(digest, 36) == expected


def test_the_digest_changes_with_the_root() -> None:
    assert root_digest(ROOT.cert_pem) == root_digest(ROOT.cert_pem)
    assert root_digest(new_root(NOW).cert_pem) != root_digest(ROOT.cert_pem)


def test_tls_info_is_the_subject_and_public_key_of_the_root() -> None:
    root = load(ROOT.cert_pem)
    info = tls_info(ROOT.cert_pem)
    assert info.trust_root == ROOT.cert_pem
    assert x509.Name.from_rfc4514_string("CN=swarm-ca").public_bytes() == base64.b64decode(
        info.cert_issuer_subject
    )
    assert base64.b64decode(info.cert_issuer_subject) == root.subject.public_bytes()
    public = serialization.load_der_public_key(base64.b64decode(info.cert_issuer_public_key))
    assert public == root.public_key()


def test_tls_info_matches_the_issuer_of_the_certificates_the_root_signs() -> None:
    info = read_certificate(issue_for(NodeRole.WORKER))
    assert info.issuer_subject == tls_info(ROOT.cert_pem).cert_issuer_subject


# Which root issued a node's certificate, through a root rotation

OLD, NEW, OTHER = ROOT, new_root(NOW), new_root(NOW)
CROSS = cross_sign(OLD, NEW, NOW)
BY_OLD, BY_NEW, BY_OTHER = (
    issue_for(NodeRole.WORKER, issuer=issuer) for issuer in (OLD, NEW, OTHER)
)


@pytest.mark.parametrize(
    ("node_pem", "trust_pem", "issuer"),
    [
        (BY_OLD, OLD.cert_pem, OLD.cert_pem),
        # Rotating: the new root's certificate comes with the cross-signed one after it; the
        # node still trusts the old root, then both, then the new one alone.
        (BY_NEW + CROSS, OLD.cert_pem, CROSS),
        (BY_NEW + CROSS, OLD.cert_pem + NEW.cert_pem, CROSS),
        (BY_NEW, OLD.cert_pem + NEW.cert_pem, NEW.cert_pem),
        (BY_NEW, NEW.cert_pem, NEW.cert_pem),
        (BY_OLD, NEW.cert_pem + OLD.cert_pem, OLD.cert_pem),
        # Nothing the node holds issued it.
        (BY_OLD, NEW.cert_pem, None),
        (BY_OTHER + CROSS, OLD.cert_pem + NEW.cert_pem, None),
    ],
)
def test_the_issuer_is_the_one_whose_signature_verifies(
    node_pem: str, trust_pem: str, issuer: str | None
) -> None:
    key_pem = new_key_and_csr()[0]  # a node's file holds its key after the certificates
    info = node_tls_info(node_pem + key_pem, trust_pem)
    assert info == tls_info_by_signature(node_pem, trust_pem)
    if issuer is None:
        assert (info.cert_issuer_subject, info.cert_issuer_public_key) == ("", "")
    else:
        assert signed_by(node_pem, issuer)
        assert info.cert_issuer_public_key == tls_info(issuer).cert_issuer_public_key
    # The old and the new root share their name: only the key tells them apart.
    assert tls_info(OLD.cert_pem).cert_issuer_subject == tls_info(NEW.cert_pem).cert_issuer_subject


def test_a_rotation_reports_the_new_key_once_the_certificate_is_the_new_roots() -> None:
    before = node_tls_info(BY_OLD, OLD.cert_pem)
    during = node_tls_info(BY_NEW + CROSS, OLD.cert_pem)
    after = node_tls_info(BY_NEW, NEW.cert_pem)
    assert before.cert_issuer_public_key == tls_info(OLD.cert_pem).cert_issuer_public_key
    assert during.cert_issuer_public_key == tls_info(NEW.cert_pem).cert_issuer_public_key
    assert after.cert_issuer_public_key == tls_info(NEW.cert_pem).cert_issuer_public_key


def test_a_certificate_without_key_identifiers_is_told_by_its_issuers_name() -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a bare root")])

    def bare(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> str:
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW)
            .not_valid_after(NOW + EXPIRY)
            .sign(root_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    root = bare(name, root_key)
    leaf = bare(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")]), KEY)
    assert node_tls_info(leaf, root) == tls_info_by_signature(leaf, root)
    assert node_tls_info(leaf, root).cert_issuer_public_key == tls_info(root).cert_issuer_public_key
