"""A node's key and CSR made by a child process (swarmlet.pki.keygen)."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from swarmlet.errors import Unavailable
from swarmlet.models import NodeRole
from swarmlet.pki import read_certificate
from swarmlet.pki.ca import issue, new_root
from swarmlet.pki.keygen import new_key_and_csr_apart, new_key_and_csr_here
from tests.pki.builders import NOW, load_key, spki


@pytest.mark.parametrize("make", [new_key_and_csr_apart, new_key_and_csr_here])
async def test_the_key_and_csr_match_and_the_ca_issues_for_them(make) -> None:
    key_pem, csr_pem = await make()
    key = load_key(key_pem)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert spki(csr) == spki(key)
    cert_pem = issue(
        new_root(NOW),
        csr_pem,
        node_id="node-1",
        role=NodeRole.WORKER,
        cluster_id="cluster-1",
        expiry=timedelta(days=90),
        now=NOW,
    )
    assert read_certificate(cert_pem).node_id == "node-1"
    assert spki(x509.load_pem_x509_certificate(cert_pem.encode())) == spki(key)


async def test_each_child_makes_a_new_key() -> None:
    first, second = await new_key_and_csr_apart(), await new_key_and_csr_apart()
    assert first[0] != second[0]


async def test_a_child_that_fails_is_unavailable(monkeypatch) -> None:
    # An interpreter that cannot run the module: the failure says why, and no key is made.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(Unavailable, match="cannot make a key and CSR: exit 1"):
        await new_key_and_csr_apart()
    monkeypatch.setattr(sys, "executable", "/bin/echo")  # exits 0, prints no key
    printed = re.escape("the child printed b'-I -m swarmlet.pki.keygen")
    with pytest.raises(Unavailable, match=printed):
        await new_key_and_csr_apart()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(Unavailable, match=r"cannot make a key and CSR: .*nonexistent"):
        await new_key_and_csr_apart()
