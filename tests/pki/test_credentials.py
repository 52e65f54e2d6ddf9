"""A node's TLS identity on disk: the trusted roots, and its certificate with its key."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from swarmlet.models import NodeRole
from swarmlet.pki import Credentials
from swarmlet.pki.ca import Issuer, issue, new_key_and_csr, new_root
from tests.pki.builders import NOW, load, load_key, spki

ROOT = new_root(NOW)


def node_identity(node_id: str, root: Issuer = ROOT) -> tuple[str, str]:
    """A certificate (PEM) for ``node_id`` and its key (PEM)."""
    key_pem, csr_pem = new_key_and_csr()
    cert_pem = issue(
        root,
        csr_pem,
        node_id=node_id,
        role=NodeRole.WORKER,
        cluster_id="cluster-1",
        expiry=timedelta(days=1),
        now=NOW,
    )
    return cert_pem, key_pem


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=["umask-000", "umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_credentials_live_in_the_certificates_folder_of_the_state_dir(tmp_path: Path) -> None:
    credentials = Credentials.of(tmp_path)
    assert credentials.folder == tmp_path / "certificates"
    assert credentials.trust_path == tmp_path / "certificates" / "swarm-root-ca.crt"
    assert credentials.node_path == tmp_path / "certificates" / "swarm-node.pem"


def test_saved_credentials_read_back(tmp_path: Path) -> None:
    credentials = Credentials.of(tmp_path)
    assert not credentials.exists()
    cert_pem, key_pem = node_identity("node-1")
    credentials.save(trust_pem=ROOT.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    assert credentials.exists()
    assert credentials.trust() == ROOT.cert_pem
    info = credentials.certificate()
    assert (info.node_id, info.role, info.cluster_id) == ("node-1", NodeRole.WORKER, "cluster-1")
    # A fresh object on the same folder sees the same identity: it is all on disk.
    assert Credentials.of(tmp_path).certificate() == info


def test_the_node_file_holds_the_certificate_and_its_matching_key(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path / "certs")
    cert_pem, key_pem = node_identity("node-1")
    credentials.save(trust_pem=ROOT.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    text = credentials.node_path.read_text()
    assert text == cert_pem + key_pem
    (cert,) = x509.load_pem_x509_certificates(text.encode())
    assert spki(cert) == spki(load_key(text[text.index("-----BEGIN PRIVATE KEY") :]))


def test_the_key_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    credentials = Credentials(tmp_path / "certs")
    cert_pem, key_pem = node_identity("node-1")
    credentials.save(trust_pem=ROOT.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    assert mode(credentials.node_path) == 0o600
    assert mode(credentials.trust_path) == 0o644
    assert mode(credentials.folder) & 0o077 == 0


def test_a_stale_temporary_file_does_not_widen_the_key_file(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path / "certs")
    credentials.folder.mkdir()
    stale = credentials.node_path.with_name(credentials.node_path.name + ".tmp")
    stale.write_text("left by a crash")
    stale.chmod(0o666)
    cert_pem, key_pem = node_identity("node-1")
    credentials.save(trust_pem=ROOT.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    assert mode(credentials.node_path) == 0o600
    assert credentials.node_path.read_text() == cert_pem + key_pem
    assert not stale.exists()


def test_saving_again_replaces_both_files_whole(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path / "certs")
    old_root = ROOT
    cert_pem, key_pem = node_identity("node-1", old_root)
    credentials.save(trust_pem=old_root.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    new = new_root(NOW)
    renewed_pem, renewed_key = node_identity("node-1", new)
    credentials.save(
        trust_pem=old_root.cert_pem + new.cert_pem, cert_pem=renewed_pem, key_pem=renewed_key
    )
    assert credentials.node_path.read_text() == renewed_pem + renewed_key
    assert credentials.certificate().serial == load(renewed_pem).serial_number
    assert credentials.trust() == old_root.cert_pem + new.cert_pem
    # Written through temporary files renamed over the old ones: nothing else is left.
    assert sorted(p.name for p in credentials.folder.iterdir()) == [
        "swarm-node.pem",
        "swarm-root-ca.crt",
    ]


def test_a_save_that_fails_half_way_keeps_the_previous_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = Credentials(tmp_path / "certs")
    cert_pem, key_pem = node_identity("node-1")
    credentials.save(trust_pem=ROOT.cert_pem, cert_pem=cert_pem, key_pem=key_pem)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    renewed_pem, renewed_key = node_identity("node-1")
    with pytest.raises(OSError, match="No space left"):
        credentials.save(trust_pem=ROOT.cert_pem, cert_pem=renewed_pem, key_pem=renewed_key)
    assert credentials.node_path.read_text() == cert_pem + key_pem
    assert credentials.trust() == ROOT.cert_pem


def test_save_trust_replaces_only_the_roots(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path / "certs")
    cert_pem, key_pem = node_identity("node-1")
    credentials.save(trust_pem=ROOT.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    other = new_root(NOW)
    credentials.save_trust(ROOT.cert_pem + other.cert_pem)
    assert credentials.trust() == ROOT.cert_pem + other.cert_pem
    assert credentials.node_path.read_text() == cert_pem + key_pem
    assert mode(credentials.trust_path) == 0o644


def test_a_folder_with_only_the_roots_has_no_credentials(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path)
    credentials.save_trust(ROOT.cert_pem)
    assert not credentials.exists()


def test_forget_removes_the_identity_and_may_be_repeated(tmp_path: Path) -> None:
    credentials = Credentials.of(tmp_path)
    cert_pem, key_pem = node_identity("node-1")
    credentials.save(trust_pem=ROOT.cert_pem, cert_pem=cert_pem, key_pem=key_pem)
    credentials.forget()
    assert not credentials.exists()
    Credentials(tmp_path / "never-saved").forget()
    assert not credentials.trust_path.exists()
    assert not credentials.node_path.exists()
    credentials.forget()
    assert not credentials.exists()
    Credentials(tmp_path / "never-saved").forget()
