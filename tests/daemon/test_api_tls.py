"""The real swarmletd on TCP: with --tlsverify only a client of the operator's CA gets in;
with --insecure-tcp the stock docker CLI speaks plain HTTP to it.

Each daemon runs as a subprocess with its own state directory, serving only a TCP port on
127.0.0.1 and driving the machine's engine, so nothing here needs a root-owned path. Without
an engine (or the docker CLI) the tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarmlet.lab import api
from swarmlet.lab.testing import in_ci
from tests.daemon.certs import Authority

ENGINE = "unix:///var/run/docker.sock"
SWARMLETD = Path(sysconfig.get_path("scripts")) / "swarmletd"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


def _docker_cli() -> str | None:
    stock = Path("/usr/local/bin/docker")
    return str(stock) if stock.exists() else shutil.which("docker")


def _require(reason: str | None) -> None:
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def docker_cli() -> str:
    cli = _docker_cli()
    _require(None if cli else "no docker CLI (/usr/local/bin/docker)")
    _require(None if api.run_sync(api.ping(ENGINE)) else f"no engine answers on {ENGINE}")
    assert cli is not None
    return cli


@dataclass(frozen=True)
class Certs:
    server: Path  # the daemon's: ca.pem (the operator's CA), cert.pem, key.pem
    client: Path  # a client of the operator's CA, laid out as DOCKER_CERT_PATH
    stranger: Path  # ca.pem trusts our server, but cert.pem is signed by another CA


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    root = tmp_path_factory.mktemp("certs")
    operator = Authority.new("operator CA")
    other = Authority.new("some other CA")
    stranger = other.client("stranger")
    stranger.write(root / "stranger")
    (root / "stranger" / "ca.pem").write_bytes(operator.pem)
    return Certs(
        server=operator.server("localhost", "127.0.0.1").write(root / "server"),
        client=operator.client("admin").write(root / "client"),
        stranger=root / "stranger",
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def swarmletd(workdir: Path, *options: str) -> Iterator[int]:
    """The real swarmletd serving tcp://127.0.0.1:<port> for the block; yields the port."""
    port = _free_port()
    log_path = workdir / "swarmletd.log"
    command = [
        str(SWARMLETD),
        "--state-dir", str(workdir / "state"),
        "--host", f"tcp://127.0.0.1:{port}",
        "--docker-host", ENGINE,
        "--hostname", "test",
        *options,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(process, port, log_path)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"swarmletd exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    pytest.fail(f"swarmletd did not listen on {port} in {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def tls_port(
    docker_cli: str, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    server = certs.server
    with swarmletd(
        tmp_path_factory.mktemp("tlsverify"),
        "--tlsverify",
        "--tlscacert", str(server / "ca.pem"),
        "--tlscert", str(server / "cert.pem"),
        "--tlskey", str(server / "key.pem"),
    ) as port:  # fmt: skip
        yield port


def _docker(cli: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    # Its own config directory: no context or setting of the machine's user gets in the way.
    clean["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    return subprocess.run(
        [cli, *args], env=clean | env, capture_output=True, text=True, timeout=60, check=False
    )


def _swarm_state_over_tls(
    cli: str, tmp_path: Path, port: int, cert_path: Path
) -> subprocess.CompletedProcess[str]:
    """`docker info --format {{.Swarm.LocalNodeState}}` against the port with --tlsverify, as the
    client whose ca.pem, cert.pem and key.pem are in cert_path."""
    return _docker(
        cli,
        tmp_path,
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}}",
        DOCKER_HOST=f"tcp://127.0.0.1:{port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=str(cert_path),
    )


def _ping(port: int, context: ssl.SSLContext) -> bytes:
    """GET /_ping over TLS; the whole answer."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


def _client_context(ca: Path, client: Path | None, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = context.maximum_version = version
    if client is not None:
        context.load_cert_chain(client / "cert.pem", client / "key.pem")
    return context


def _assert_refused(port: int, context: ssl.SSLContext) -> None:
    """The server lets no request through. Under TLS 1.2 it checks the client's certificate
    before its own Finished, so the client's handshake fails; under TLS 1.3 the client has
    finished its handshake by then, and sees the connection closed with no answer (asyncio's
    server drops it without flushing the alert)."""
    try:
        answer = _ping(port, context)
    except (ssl.SSLError, ConnectionResetError):
        return
    assert context.maximum_version is ssl.TLSVersion.TLSv1_3, "the TLS 1.2 handshake succeeded"
    assert answer == b""


VERSIONS = pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)


def test_a_client_of_the_operators_ca_is_served(
    docker_cli: str, certs: Certs, tls_port: int, tmp_path: Path
) -> None:
    result = _swarm_state_over_tls(docker_cli, tmp_path, tls_port, certs.client)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "inactive"


@VERSIONS
def test_the_same_exchange_with_a_client_certificate_is_answered(
    certs: Certs, tls_port: int, version: ssl.TLSVersion
) -> None:
    # The control for the refusals below: this very exchange gets through with a certificate.
    answer = _ping(tls_port, _client_context(certs.client / "ca.pem", certs.client, version))
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"\r\n\r\nOK")


@VERSIONS
def test_a_client_without_a_certificate_is_refused(
    certs: Certs, tls_port: int, version: ssl.TLSVersion
) -> None:
    _assert_refused(tls_port, _client_context(certs.client / "ca.pem", None, version))


@VERSIONS
def test_a_client_of_another_ca_is_refused(
    certs: Certs, tls_port: int, version: ssl.TLSVersion
) -> None:
    _assert_refused(tls_port, _client_context(certs.stranger / "ca.pem", certs.stranger, version))


def test_the_docker_cli_with_another_cas_certificate_is_refused(
    docker_cli: str, certs: Certs, tls_port: int, tmp_path: Path
) -> None:
    result = _swarm_state_over_tls(docker_cli, tmp_path, tls_port, certs.stranger)
    assert result.returncode != 0
    assert "inactive" not in result.stdout
    assert "error during connect" in result.stderr


def test_plain_http_on_the_tls_port_gets_no_answer(tls_port: int) -> None:
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw:
        raw.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        try:
            while chunk := raw.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/1.1" not in answer


def test_insecure_tcp_serves_the_docker_cli_in_plain_text(docker_cli: str, tmp_path: Path) -> None:
    with swarmletd(tmp_path, "--insecure-tcp") as port:
        result = _docker(
            docker_cli,
            tmp_path,
            "-H",
            f"tcp://127.0.0.1:{port}",
            "version",
            "--format",
            "{{.Server.APIVersion}}",
        )
    assert result.returncode == 0, result.stderr
    # swarmletd's API version, not the engine's behind it.
    assert result.stdout.strip() == "1.47"
