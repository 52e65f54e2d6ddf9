"""Issue 4, point 4: a secret reaches its task on a tmpfs, and nowhere else.

The secret is a fresh random marker, so finding its bytes (raw or in base64, as they travel in
JSON) anywhere is proof it went there.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

from swarmlet.lab.lab import Lab, docker_cli
from tests.e2e.conftest import Cli, eventually

# Where a host could have written it on disk: the lab's state, the engine's files, the logs,
# temporary files. Mount points below them (a tmpfs) are not disk, and are skipped.
DISK_ROOTS = ("/var/lib/swarmlet-lab-swlt", "/var/lib/docker", "/var/log/swarmlet", "/run", "/tmp")
LARGEST_FILE = 64 * 1024 * 1024


def forms(secret: bytes) -> list[bytes]:
    return [secret, base64.b64encode(secret)]


def files_on_disk(roots: tuple[str, ...]) -> Iterator[Path]:
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [
                name for name in subfolders if not os.path.ismount(os.path.join(folder, name))
            ]
            for name in files:
                path = Path(folder, name)
                if path.is_file() and not path.is_symlink():
                    yield path


def disk_files_holding(needles: list[bytes]) -> list[str]:
    found = []
    for path in files_on_disk(DISK_ROOTS):
        try:
            if path.stat().st_size > LARGEST_FILE:
                continue
            data = path.read_bytes()
        except OSError:
            continue  # gone meanwhile, a socket, a FIFO
        if any(needle in data for needle in needles):
            found.append(str(path))
    return found


def process_holds(pid: int, needles: list[bytes]) -> bool:
    """Whether any of the process's readable memory holds one of the needles."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
        for line in maps:
            addresses, permissions = line.split()[:2]
            if not permissions.startswith("r"):
                continue
            start, end = (int(value, 16) for value in addresses.split("-"))
            try:
                memory.seek(start)
                chunk = memory.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            if any(needle in chunk for needle in needles):
                return True
    return False


def daemon_pid(lab: Lab, host: str) -> int:
    return int(lab.host(host).pid_file.read_text())


def test_a_secret_reaches_only_its_task_on_a_tmpfs(cli: Cli, lab: Lab) -> None:
    secret = f"swl-secret-{secrets.token_hex(16)}".encode()
    created = subprocess.run(
        [docker_cli(), "secret", "create", "db_pass", "-"],
        input=secret,
        env={**os.environ, "DOCKER_HOST": lab.docker_host},
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    try:
        cli.create(
            "vault",
            "--secret",
            "db_pass",
            "--constraint",
            "node.hostname==node2",
            "swarmlet-test/busybox:latest",
            "sleep",
            "3600",
        )
        cli.running("vault", 1)
        [container] = cli.ok(
            "ps", "-q", "--filter", "label=com.docker.swarm.service.name=vault"
        ).split()
        assert cli.ok("exec", container, "cat", "/run/secrets/db_pass").encode() == secret
        mounts = cli.ok("exec", container, "cat", "/proc/mounts").splitlines()
        [mount] = [line for line in mounts if " /run/secrets/db_pass " in line]
        assert mount.split()[2] == "tmpfs"
        refused = cli.lab.docker("secret", "rm", "db_pass")
        assert refused.returncode != 0
        assert "is in use by the following service: vault" in refused.stderr

        needles = forms(secret)
        assert disk_files_holding(needles) == []
        store = lab.host("node1").state_dir
        for name in ("store.db", "store.db-wal"):
            path = store / name
            if path.exists():
                data = path.read_bytes()
                assert not any(needle in data for needle in needles), name
        # node2 runs the task and holds the secret; node3 runs none and never received it.
        assert process_holds(daemon_pid(lab, "node2"), needles)
        assert not process_holds(daemon_pid(lab, "node3"), needles)
    finally:
        cli.cleanup()
        eventually(
            lambda: (
                cli.lab.docker("secret", "rm", "db_pass").returncode == 0
                or "not found" in cli.lab.docker("secret", "inspect", "db_pass").stderr
            ),
            what="the secret removed",
        )
