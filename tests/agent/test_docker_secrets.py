"""A task with a secret and a config on the machine's real engine: the container reads their
bytes at their targets, and sees them on a tmpfs (root, for the tmpfs; the engine)."""

from __future__ import annotations

import asyncio

from swarmlet.agent.dependencies import Dependencies
from swarmlet.agent.task_files import TaskFiles, files_dir
from swarmlet.clock import SystemClock
from swarmlet.ids import new_id
from swarmlet.models import (
    Config,
    ConfigReference,
    ConfigSpec,
    FileTarget,
    Secret,
    SecretReference,
    SecretSpec,
    TaskState,
)
from tests.agent.conftest import running
from tests.agent.mounts import require_root

TEST_IMAGE = "swarmlet-test/busybox:latest"
SECRET = Secret(id=new_id(), spec=SecretSpec(name="db_password", data=b"s3cr3t\x00\xff\n"))
CONFIG = Config(id=new_id(), spec=ConfigSpec(name="app.conf", data=b"port = 80\n"))
# What the container reports, into a directory of the test's.
SCRIPT = """
cat /run/secrets/db_password > /out/secret
cat /app.conf > /out/config
stat -c '%u %g %a' /run/secrets/db_password > /out/owner
grep -E ' (/run/secrets/db_password|/app.conf) ' /proc/mounts > /out/mounts
echo nope 2>/dev/null > /run/secrets/db_password || echo read-only > /out/write
"""


async def test_a_container_reads_its_secret_from_a_tmpfs(docker, test_labels, make_task, tmp_path):
    require_root()
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    dependencies = Dependencies()
    dependencies.replace([SECRET], [CONFIG])
    node_id = new_id()
    files = TaskFiles(files_dir(node_id, tmp_path / "run"), dependencies)
    task = make_task(
        TEST_IMAGE,
        service="swltest",
        node_id=node_id,
        command=["sh", "-c", SCRIPT],
        user="1000",
        mounts=[{"Type": "bind", "Source": str(out), "Target": "/out"}],
        secrets=[
            SecretReference(
                secret_id=SECRET.id,
                secret_name=SECRET.name,
                file=FileTarget(name="db_password", uid="1000", gid="1000", mode=0o400),
            )
        ],
        configs=[
            ConfigReference(
                config_id=CONFIG.id,
                config_name=CONFIG.name,
                file=FileTarget(name="app.conf", uid="0", gid="0", mode=0o444),
            )
        ],
    )
    try:
        async with running(
            task,
            engine=docker,
            clock=SystemClock(),
            node_id=node_id,
            container_labels=test_labels,
            files=files,
        ) as run:
            async with asyncio.timeout(30):
                while not (run.statuses and run.last.state.is_terminal):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            assert run.last.state == TaskState.COMPLETE, run.last
            # Its files went with the task's end.
            assert list(files.directory.iterdir()) == []
    finally:
        await files.unmount()
    assert (out / "secret").read_bytes() == b"s3cr3t\x00\xff\n"
    assert (out / "config").read_bytes() == b"port = 80\n"
    assert (out / "owner").read_text() == "1000 1000 400\n"
    mounts = sorted(line.split()[:3] for line in (out / "mounts").read_text().splitlines())
    assert mounts == [
        ["tmpfs", "/app.conf", "tmpfs"],
        ["tmpfs", "/run/secrets/db_password", "tmpfs"],
    ]
    for line in (out / "mounts").read_text().splitlines():
        assert line.split()[3].split(",")[0] == "ro"
    assert (out / "write").read_text() == "read-only\n"
    assert not (tmp_path / "run" / node_id).exists()
