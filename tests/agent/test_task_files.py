"""The files of tasks' secrets and configs: written with their owner and mode, removed, and
only ever on a tmpfs. Most tests fake the mount (``FakeMounts``); those marked as needing root
mount a real tmpfs in the test's directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from swarmlet.agent.dependencies import Dependencies
from swarmlet.agent.task_files import TaskFiles, files_dir, mounted_fs_type, unmount_secrets
from swarmlet.errors import InvalidSpec, NotFound, Unavailable
from swarmlet.models import FileTarget, Secret, SecretReference, SecretSpec
from tests.agent.mounts import FakeMounts, require_root

DB = Secret(id="sdb", spec=SecretSpec(name="db", data=b"hunter2\x00\xff"))
UID, GID = os.getuid(), os.getgid()


def ref(name: str, uid: int = UID, gid: int = GID, mode: int = 0) -> SecretReference:
    target = FileTarget(name=name, uid=str(uid), gid=str(gid), mode=mode)
    return SecretReference(secret_id=DB.id, secret_name=DB.name, file=target)


@pytest.fixture
def dependencies() -> Dependencies:
    dependencies = Dependencies()
    dependencies.replace([DB], [])
    return dependencies


@pytest.fixture
def mounts() -> FakeMounts:
    return FakeMounts()


@pytest.fixture
def files(tmp_path: Path, dependencies: Dependencies, mounts: FakeMounts) -> TaskFiles:
    return TaskFiles(files_dir("node1", tmp_path), dependencies, mounts)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_written_on_the_tmpfs_and_bind_mounted(files, mounts, make_task, tmp_path):
    task = make_task(secrets=[ref("db"), ref("/etc/app/db", mode=0o400)])
    binds = await files.prepare(task)
    directory = tmp_path / "node1" / "secrets"
    assert mounts.mounted == {directory: "tmpfs"}
    assert mode_of(directory / task.id) == 0o700
    assert binds == [
        {
            "Type": "bind",
            "Source": str(directory / task.id / "secret-0"),
            "Target": "/run/secrets/db",
            "ReadOnly": True,
        },
        {
            "Type": "bind",
            "Source": str(directory / task.id / "secret-1"),
            "Target": "/etc/app/db",
            "ReadOnly": True,
        },
    ]
    first, second = (Path(bind["Source"]) for bind in binds)
    assert first.read_bytes() == second.read_bytes() == b"hunter2\x00\xff"
    assert (mode_of(first), mode_of(second)) == (0o444, 0o400)
    assert (first.stat().st_uid, first.stat().st_gid) == (UID, GID)
    assert sorted(p.name for p in (directory / task.id).iterdir()) == ["secret-0", "secret-1"]


async def test_the_tmpfs_is_never_swapped_where_the_kernel_can_say_so(
    tmp_path, dependencies, make_task
):
    for noswap in (True, False):
        mounts = FakeMounts(noswap=noswap)
        files = TaskFiles(files_dir(f"node{int(noswap)}", tmp_path), dependencies, mounts)
        await files.prepare(make_task(secrets=[ref("db")]))
        assert ("noswap" in mounts.options[files.directory]) is noswap
        assert mounts.mounted == {files.directory: "tmpfs"}


async def test_preparing_again_replaces_the_files(files, make_task):
    task = make_task(secrets=[ref("db")])
    await files.prepare(task)
    (bind,) = await files.prepare(task)  # an earlier attempt left a read-only file
    assert Path(bind["Source"]).read_bytes() == DB.spec.data


async def test_a_missing_secret_writes_nothing(files, mounts, make_task):
    task = make_task(secrets=[ref("db")])
    with pytest.raises(NotFound, match="secret nope not found"):
        await files.prepare(task.replace(spec=_with_secret_id(task, "nope")))
    assert mounts.mounted == {}


async def test_release_and_retain_remove_a_tasks_files(files, make_task):
    tasks = [make_task(secrets=[ref("db")]) for _ in range(3)]
    for task in tasks:
        await files.prepare(task)
    await files.release(tasks[0].id)
    await files.release(tasks[0].id)  # idempotent
    assert sorted(p.name for p in files.directory.iterdir()) == sorted(t.id for t in tasks[1:])
    await files.retain({tasks[2].id})
    assert [p.name for p in files.directory.iterdir()] == [tasks[2].id]


async def test_nothing_is_written_where_no_tmpfs_is(tmp_path, dependencies, make_task):
    files = TaskFiles(files_dir("node1", tmp_path), dependencies, FakeMounts(fs_type="ext4"))
    with pytest.raises(Unavailable, match="is not a tmpfs"):
        await files.prepare(make_task(secrets=[ref("db")]))
    assert list(tmp_path.iterdir()) == []


async def test_unmounting_takes_the_tmpfs_and_its_directories(files, mounts, make_task, tmp_path):
    await files.prepare(make_task(secrets=[ref("db")]))
    await files.unmount()
    assert mounts.mounted == {}
    assert list(tmp_path.iterdir()) == []
    await files.unmount()  # idempotent


def test_a_task_or_node_id_never_escapes_the_directory(files):
    with pytest.raises(InvalidSpec):
        files_dir("../etc")
    with pytest.raises(InvalidSpec):
        files._task_dir("..")


def test_the_type_of_what_is_mounted_where() -> None:
    mountinfo = (
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "90 27 0:50 / /run/swarmlet/n1/secrets rw,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=700\n"
        "91 27 0:51 / /tmp/a\\040b rw - tmpfs tmpfs rw\n"
    )
    assert mounted_fs_type(Path("/run/swarmlet/n1/secrets"), mountinfo) == "tmpfs"
    assert mounted_fs_type(Path("/tmp/a b"), mountinfo) == "tmpfs"
    assert mounted_fs_type(Path("/"), mountinfo) == "ext4"
    assert mounted_fs_type(Path("/run/swarmlet/n2/secrets"), mountinfo) is None


# A real tmpfs (root)


def _mounted(path: Path) -> list[str]:
    lines = Path("/proc/self/mounts").read_text().splitlines()
    return [line for line in lines if line.split()[1] == str(path)]


async def test_a_real_tmpfs_is_mounted_once_and_unmounted(tmp_path, dependencies, make_task):
    require_root()
    files = TaskFiles(files_dir("node1", tmp_path), dependencies)
    try:
        task = make_task(secrets=[ref("db", uid=1000, gid=1001, mode=0o440)])
        (bind,) = await files.prepare(task)
        await files.prepare(make_task(secrets=[ref("db")]))  # mounted already: used as it is
        (line,) = _mounted(files.directory)
        assert line.split()[2] == "tmpfs"
        assert "mode=700" in line
        written = Path(bind["Source"]).stat()
        assert (written.st_uid, written.st_gid, stat.S_IMODE(written.st_mode)) == (
            1000,
            1001,
            0o440,
        )
    finally:
        await unmount_secrets("node1", tmp_path)
    assert _mounted(files.directory) == []
    assert list(tmp_path.iterdir()) == []


def _with_secret_id(task, secret_id: str):
    container = task.spec.container_spec
    refs = [r.replace(secret_id=secret_id) for r in container.secrets]
    return task.spec.replace(container_spec=container.replace(secrets=refs))
