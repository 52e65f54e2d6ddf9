"""The member's certificate from the cluster's root, and its files on disk."""

from __future__ import annotations

import ipaddress
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from swarmlet.errors import InvalidSpec
from swarmlet.manager.etcd import MemberTLS, member_tls, new_cluster_member, write_member_tls
from swarmlet.models import RootCA
from swarmlet.pki.ca import cross_sign, new_root
from tests.pki.builders import NOW, load, load_key, spki, subject

ROOT = new_root(NOW)
ROOT_CA = RootCA(ca_cert=ROOT.cert_pem, ca_key=ROOT.key_pem)


def issued(root_ca: RootCA = ROOT_CA, address: str = "10.1.2.3") -> MemberTLS:
    return member_tls(
        root_ca,
        node_id="node1",
        cluster_id="cluster-1",
        address=address,
        expiry=timedelta(days=90),
        now=NOW,
    )


def test_the_member_certificate_is_signed_by_the_root_for_the_members_key() -> None:
    tls = issued()
    cert = load(tls.cert_pem)
    root = load(ROOT.cert_pem)
    cert.verify_directly_issued_by(root)
    assert spki(cert) == spki(load_key(tls.key_pem))
    assert isinstance(load_key(tls.key_pem), ec.EllipticCurvePrivateKey)
    assert tls.trust_pem == ROOT.cert_pem
    assert cert.not_valid_before_utc == NOW - timedelta(hours=1)
    assert cert.not_valid_after_utc == NOW + timedelta(days=90)


def test_the_member_certificate_names_its_address_loopback_and_swarm_etcd() -> None:
    cert = load(issued().cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["swarm-etcd"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # Not a node's name: the certificate opens no session on the manager's port.
    assert subject(cert, NameOID.COMMON_NAME) == ["etcd-node1"]
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-etcd"]
    assert subject(cert, NameOID.ORGANIZATION_NAME) == ["cluster-1"]


def test_a_member_on_loopback_names_it_once() -> None:
    san = load(issued(address="127.0.0.1").cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_during_a_root_rotation_the_new_root_signs_and_both_are_trusted() -> None:
    new = new_root(NOW)
    crossed = cross_sign(ROOT, new, NOW)
    rotating = ROOT_CA.replace(
        new_ca_cert=new.cert_pem, new_ca_key=new.key_pem, cross_signed=crossed
    )
    tls = issued(rotating)
    load(tls.cert_pem).verify_directly_issued_by(load(new.cert_pem))
    assert tls.cert_pem.endswith(crossed)
    assert tls.trust_pem == ROOT.cert_pem + new.cert_pem


def test_a_member_needs_a_root_and_an_ip_address() -> None:
    with pytest.raises(InvalidSpec, match="no root CA"):
        issued(RootCA())
    with pytest.raises(InvalidSpec, match="IP address"):
        issued(address="manager1")


def test_the_files_are_readable_by_root_alone(tmp_path: Path) -> None:
    config = new_cluster_member("node1", tmp_path, "10.1.2.3", "cluster-1")
    tls = issued()
    write_member_tls(config, tls)
    assert config.tls_dir == tmp_path / "etcd-tls"
    assert stat.S_IMODE(config.tls_dir.stat().st_mode) == 0o700
    for path, text in (
        (config.cert_path, tls.cert_pem),
        (config.key_path, tls.key_pem),
        (config.trust_path, tls.trust_pem),
    ):
        assert path.read_text() == text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
