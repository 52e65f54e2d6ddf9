"""Real etcd members on 127.0.0.1 for the tests, shared by ``tests/manager/etcd/`` (members
under a supervisor, one test each) and ``tests/manager/store/`` (one member for a whole
module): the binary, free ports, a member's TLS, and a member started without a supervisor,
stopped (and, if that fails, killed) by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from swarmlet.manager.etcd import (
    MemberConfig,
    client_ssl_context,
    etcd_argv,
    member_tls,
    new_cluster_member,
    write_member_tls,
)
from swarmlet.models import RootCA
from swarmlet.pki.ca import Issuer

ADDRESS = "127.0.0.1"
CLUSTER = "cluster-1"
HEALTHY_WITHIN_S = 20.0
STOP_GRACE_S = 5.0


def etcd_binary_or_skip() -> str:
    """The etcd binary; without one a test skips, or fails under CI."""
    binary = shutil.which("etcd")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no etcd under CI: scripts/bootstrap.sh installs etcd-server")
        pytest.skip("no etcd: scripts/bootstrap.sh installs etcd-server")
    return binary


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (the kernel's choice), for members on loopback."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((ADDRESS, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def prepare_member(root: Issuer, config: MemberConfig) -> None:
    """Issue the member's certificate from ``root`` and write its TLS files."""
    tls = member_tls(
        RootCA(ca_cert=root.cert_pem, ca_key=root.key_pem),
        node_id=config.name,
        cluster_id=CLUSTER,
        address=config.address,
        expiry=timedelta(days=1),
        now=datetime.now(UTC),
    )
    write_member_tls(config, tls)


def kill_if_running(pid: int) -> None:
    """Only if stopping failed: a PID we saw started, and still our child, is ended."""
    with suppress(ProcessLookupError, ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)


def _healthy(config: MemberConfig, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(f"{config.client_url}/health", context=context, timeout=2) as r:
            return b'"health":"true"' in r.read()
    except OSError:
        return False


@contextmanager
def one_member(
    binary: str, root: Issuer, state_dir: Path, ports: tuple[int, int] | None = None
) -> Iterator[MemberConfig]:
    """One member of a new cluster, started as a plain child (no supervisor, so no event
    loop: it can serve every test of a module) and healthy; stopped by its PID after. Started
    again on the same ``ports`` (client, peer) and folder, it comes back with its data."""
    client_port, peer_port = ports or free_ports(2)
    config = new_cluster_member(
        "node1", state_dir, ADDRESS, CLUSTER, client_port=client_port, peer_port=peer_port
    )
    prepare_member(root, config)
    with config.log_path.open("ab") as log:
        process = subprocess.Popen(
            # SIGKILLed when the test process ends, even killed before its teardown.
            ["setpriv", "--pdeathsig", "KILL", *etcd_argv(config, binary)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        context = client_ssl_context(config)
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while not _healthy(config, context):
            assert process.poll() is None, f"etcd ended: {config.log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "etcd was not healthy in time"
            time.sleep(0.05)
        yield config
    finally:
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            kill_if_running(process.pid)
            process.wait()
