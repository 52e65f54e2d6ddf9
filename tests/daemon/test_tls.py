from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from swarmlet.daemon.tls import api_server_context
from tests.daemon.certs import Authority


@pytest.fixture
def server(tmp_path: Path) -> Path:
    return Authority.new("operator CA").server("localhost", "127.0.0.1").write(tmp_path)


def test_the_context_requires_a_client_certificate_over_tls_1_2_or_later(server: Path) -> None:
    context = api_server_context(server / "ca.pem", server / "cert.pem", server / "key.pem")
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_the_given_ca_is_the_only_one_trusted(server: Path) -> None:
    context = api_server_context(server / "ca.pem", server / "cert.pem", server / "key.pem")
    [trusted] = context.get_ca_certs()
    assert trusted["subject"] == ((("commonName", "operator CA"),),)


def test_a_key_of_another_certificate_is_refused(server: Path, tmp_path: Path) -> None:
    other = Authority.new("other").server("localhost", "127.0.0.1").write(tmp_path / "other")
    with pytest.raises(ssl.SSLError):
        api_server_context(server / "ca.pem", server / "cert.pem", other / "key.pem")


def test_a_file_that_is_not_pem_is_refused(server: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        api_server_context(junk, server / "cert.pem", server / "key.pem")
