"""Scratch network namespaces for the nftables tests: made by the test, named
``swlt-nft-<random>-<role>``, removed after it with every process the test started in them.

These tests need root and ``ip``/``nft``/``nsenter``: without them they skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from swarmlet.net import netlink

T = TypeVar("T")
PREFIX = "swlt-nft-"


def require_root() -> None:
    """Skip (fail under CI) where namespaces and nft cannot be had."""
    reason = None
    if os.geteuid() != 0:
        reason = "needs root"
    elif missing := [c for c in ("ip", "nft", "nsenter") if shutil.which(c) is None]:
        reason = f"needs {', '.join(missing)}"
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true and the nft tests: {reason}")
    pytest.skip(f"the nft tests: {reason}")


def sh(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def in_netns(name: str, work: Callable[[], T]) -> T:
    """Run ``work`` on a thread inside the named namespace (the data plane's own helper)."""
    return netlink.in_netns(f"/run/netns/{name}", work)


def ask(netns: str, address: str, port: int, timeout: float = 2.0) -> str:
    """Connect from ``netns`` and return what the server says (its name and our address)."""
    sock = in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    with sock:
        sock.settimeout(timeout)
        sock.connect((address, port))
        data = b""
        while chunk := sock.recv(256):
            data += chunk
    return data.decode().strip()


# Answers every connection with its name and the address the client came from.
SERVER = """
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", port))
server.listen(64)
print("ready", flush=True)
while True:
    conn, peer = server.accept()
    with conn:
        conn.sendall(f"{name} {peer[0]}\\n".encode())
"""


class Namespaces:
    """Namespaces by role, and the processes started in them."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{uuid.uuid4().hex[:6]}"
        self.names: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []

    def add(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def ip(self, netns: str, *args: str) -> str:
        return sh("ip", "-n", netns, *args)

    def run(self, netns: str, *args: str) -> str:
        return sh("ip", "netns", "exec", netns, *args)

    def link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        """A veth pair from namespace ``a`` to namespace ``b``, both ends up."""
        self.ip(a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b)
        self.ip(a, "link", "set", a_if, "up")
        self.ip(b, "link", "set", b_if, "up")

    def start(self, netns: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            ["ip", "netns", "exec", netns, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.processes.append(process)
        return process

    def serve(self, netns: str, name: str, port: int) -> None:
        process = self.start(netns, sys.executable, "-c", SERVER, name, str(port))
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"

    def sleeper(self, netns: str) -> int:
        """The PID of a process that lives in ``netns`` (as a task's process would); returned
        once it is in there, not while ``ip netns exec`` is still on its way."""
        process = self.start(netns, "/bin/busybox", "sh", "-c", "echo ready; exec sleep 600")
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process.pid

    def remove(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], check=False)


@contextmanager
def namespaces() -> Iterator[Namespaces]:
    require_root()
    made = Namespaces()
    try:
        yield made
    finally:
        made.remove()


def ruleset_of(netns: str) -> str:
    return sh("ip", "netns", "exec", netns, "nft", "list", "ruleset")
