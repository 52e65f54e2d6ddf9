"""Real TLS handshakes on loopback between the manager's and the agents' contexts."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from swarmlet.models import NodeRole
from swarmlet.pki import CertificateInfo, Credentials
from swarmlet.pki.ca import Issuer, new_root
from swarmlet.pki.tls import (
    MANAGER_NAME,
    TLS_READ_BUFFER,
    client_context,
    peer_certificate,
    reloading_server_context,
    server_context,
    unverified_context,
)
from tests.pki.builders import NOW, load, node_credentials

ROOT = new_root(NOW)
TIMEOUT = 10


@dataclass
class Server:
    port: int
    # What the server saw of each client it served: its certificate, or None.
    peers: list[CertificateInfo | None] = field(default_factory=list)


@asynccontextmanager
async def serving(context: ssl.SSLContext) -> AsyncIterator[Server]:
    seen: list[CertificateInfo | None] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(peer_certificate(writer.get_extra_info("ssl_object")))
        writer.write(b"hello")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        port = server.sockets[0].getsockname()[1]
        yield Server(port, seen)
    finally:
        server.close()
        await server.wait_closed()


async def session(server: Server, context: ssl.SSLContext) -> tuple[bytes, bytes]:
    """Shake hands as an agent: the server's certificate (DER), and what the server said
    (b"" when it hung up without a word)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname=MANAGER_NAME
        ),
        TIMEOUT,
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert der is not None
        try:
            said = await asyncio.wait_for(reader.read(), TIMEOUT)
        except (ssl.SSLError, ConnectionError):
            said = b""
        return bytes(der), said
    finally:
        writer.close()
        with suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def connect(server: Server, context: ssl.SSLContext) -> bytes:
    """A session the server serves; the server's certificate (DER)."""
    der, said = await session(server, context)
    assert said == b"hello"
    return der


def der_of(credentials: Credentials) -> bytes:
    cert = load(credentials.node_path.read_text())
    return cert.public_bytes(serialization.Encoding.DER)


def manager(path: Path, issuer: Issuer = ROOT, **names: str) -> Credentials:
    return node_credentials(path, issuer, NodeRole.MANAGER, **names)


def worker(path: Path, issuer: Issuer = ROOT, **names: str) -> Credentials:
    return node_credentials(path, issuer, NodeRole.WORKER, **names)


async def test_an_agent_reaches_a_manager_without_a_certificate(tmp_path: Path) -> None:
    managers = manager(tmp_path / "manager")
    async with serving(server_context(managers)) as server:
        assert await connect(server, client_context(ROOT.cert_pem)) == der_of(managers)
    assert server.peers == [None]


async def test_the_manager_reads_the_certificate_an_agent_presents(tmp_path: Path) -> None:
    managers = manager(tmp_path / "manager")
    workers = worker(tmp_path / "worker", node_id="node-9", cluster_id="cluster-9")
    async with serving(server_context(managers)) as server:
        await connect(server, client_context(ROOT.cert_pem, workers))
    (peer,) = server.peers
    assert peer == workers.certificate()
    assert peer is not None
    assert (peer.node_id, peer.role, peer.cluster_id) == ("node-9", NodeRole.WORKER, "cluster-9")


def test_peer_certificate_of_no_connection_is_none() -> None:
    assert peer_certificate(None) is None


async def test_a_worker_certificate_cannot_serve_as_the_manager(tmp_path: Path) -> None:
    workers = worker(tmp_path / "worker")
    async with serving(server_context(workers)) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await connect(server, client_context(ROOT.cert_pem))
    assert server.peers == []


async def test_a_manager_of_another_root_is_refused(tmp_path: Path) -> None:
    stranger = manager(tmp_path / "stranger", new_root(NOW))
    async with serving(server_context(stranger)) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await connect(server, client_context(ROOT.cert_pem))


async def test_an_agent_trusts_the_cluster_root_only_not_the_system_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A root the host trusts (the system store, here pointed at by OpenSSL's variables) is not
    # the cluster's: a manager certificate from it must not be accepted by an agent.
    host_root = new_root(NOW)
    (tmp_path / "host-roots.pem").write_text(host_root.cert_pem)
    (tmp_path / "host-roots").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "host-roots.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "host-roots"))
    impostor = manager(tmp_path / "impostor", host_root)
    async with serving(server_context(impostor)) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await connect(server, client_context(ROOT.cert_pem))


async def test_a_client_certificate_of_another_root_is_refused(tmp_path: Path) -> None:
    managers = manager(tmp_path / "manager")
    stranger = worker(tmp_path / "stranger", new_root(NOW), trust_pem=ROOT.cert_pem)
    async with serving(server_context(managers)) as server:
        # In TLS 1.3 the client finishes its handshake first; the server then hangs up.
        _, said = await session(server, client_context(ROOT.cert_pem, stranger))
    assert said == b""
    assert server.peers == []


async def test_the_unverified_context_reaches_any_server(tmp_path: Path) -> None:
    stranger = worker(tmp_path / "stranger", new_root(NOW))
    async with serving(server_context(stranger)) as server:
        assert await connect(server, unverified_context()) == der_of(stranger)


def reloading(credentials: Credentials) -> ssl.SSLContext:
    return reloading_server_context(credentials)


async def test_the_reloading_context_serves_a_renewed_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "manager"
    first = manager(folder, node_id="manager-1")
    async with serving(reloading(first)) as server:
        before = der_of(first)
        assert await connect(server, client_context(ROOT.cert_pem)) == before
        renewed = manager(folder, node_id="manager-1")
        after = der_of(renewed)
        assert after != before
        assert await connect(server, client_context(ROOT.cert_pem)) == after


async def test_the_reloading_context_trusts_a_root_added_later(tmp_path: Path) -> None:
    # A root rotation: the manager learns the new root while it serves, then a node holding a
    # certificate from the new root presents it.
    new = new_root(NOW)
    managers = manager(tmp_path / "manager")
    rotated = worker(tmp_path / "worker", new, node_id="node-2", trust_pem=ROOT.cert_pem)
    async with serving(reloading(managers)) as server:
        _, said = await session(server, client_context(ROOT.cert_pem, rotated))
        assert said == b""
        managers.save_trust(ROOT.cert_pem + new.cert_pem)
        await connect(server, client_context(ROOT.cert_pem, rotated))
    assert [peer.node_id if peer else None for peer in server.peers] == ["node-2"]


async def test_connections_keep_small_read_buffers_and_carry_big_messages(
    tmp_path: Path,
) -> None:
    # asyncio's 256 KiB per connection would be 250 MB on a manager with 1,000 agents.
    managers = manager(tmp_path / "manager")
    payload = bytes(range(256)) * 4096  # 1 MiB, many times the buffer
    received: list[bytes] = []

    async def echo_size(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(len(payload)))
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo_size, "127.0.0.1", 0, ssl=server_context(managers))
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(ROOT.cert_pem), server_hostname=MANAGER_NAME
        )
        ssl_protocol = writer.transport._ssl_protocol  # type: ignore[attr-defined]
        writer.write(payload)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert received == [payload]
    assert answer == payload
    assert len(ssl_protocol._ssl_buffer) == TLS_READ_BUFFER


async def test_the_reloading_context_is_loaded_again_only_when_the_files_change(
    tmp_path: Path,
) -> None:
    # A context per connection would hold a copy of the chain and trust store per agent.
    folder = tmp_path / "manager"
    first = manager(folder, node_id="manager-1")
    contexts: list[ssl.SSLContext] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        contexts.append(writer.get_extra_info("ssl_object").context)
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=reloading(first))
    port = server.sockets[0].getsockname()[1]
    try:
        listening = Server(port)
        for _ in range(3):
            await connect(listening, client_context(ROOT.cert_pem))
        manager(folder, node_id="manager-1")  # renewed
        for _ in range(2):
            await connect(listening, client_context(ROOT.cert_pem))
    finally:
        server.close()
        await server.wait_closed()
    assert len(contexts) == 5
    assert contexts[0] is contexts[1] is contexts[2]
    assert contexts[3] is not contexts[2]
    assert contexts[3] is contexts[4]
