"""The files of tasks' secrets and configs, on a tmpfs of the agent's own: never on disk.

Each agent mounts one tmpfs, keyed by its node ID so that several agents on one machine (the
lab) never share one: ``/run/swarmlet/<node id>/secrets``, mode 0700, ``noswap`` where the
kernel has it, mounted on first use and kept across agent restarts (mounting is idempotent: a
tmpfs already there is used as it is).
Before a task's container is created, ``TaskFiles.prepare`` writes the task's files (planned by
``swarmlet.agent.dependencies``) into a directory of its own, ``<tmpfs>/<task id>/``, with the
reference's owner and mode, and returns the container's read-only bind mounts of them. Nothing
is written unless the directory is a tmpfs mount point. ``release`` removes a task's files,
``retain`` those of every task but the given ones, and ``unmount`` takes the tmpfs away when the
node leaves the swarm.

A file bind-mounted from a tmpfs shows as ``tmpfs`` in the container's ``/proc/mounts``, as a
secret does under Docker Swarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any, Protocol

from swarmlet.agent.dependencies import Dependencies, TaskFile, plan_files, runtime_configs
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.models import Task

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/run/swarmlet")
# Secrets are under 500 KiB and configs under 1000 KiB each; a tmpfs uses only what it holds.
TMPFS_OPTIONS = "mode=0700,size=128m,nodev,nosuid,noexec"
# Never swapped out either, where the kernel can say so (Linux 6.4 and later).
NOSWAP = ",noswap"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def files_dir(node_id: str, root: Path = DEFAULT_ROOT) -> Path:
    """Where the node's tmpfs is mounted."""
    if not _SAFE_NAME.fullmatch(node_id):
        raise InvalidSpec(f"node ID {node_id!r} cannot name a directory")
    return root / node_id / "secrets"


def bind_mount(source: Path, target: str) -> dict[str, Any]:
    return {"Type": "bind", "Source": str(source), "Target": target, "ReadOnly": True}


# -- mounting -----------------------------------------------------------------------------


class Mounts(Protocol):
    """The few mount operations the agent makes (``HostMounts``; a fake in the tests)."""

    def fs_type(self, path: Path) -> str | None:
        """The type of the filesystem mounted at ``path``; None when ``path`` is no mount
        point."""
        ...

    async def mount_tmpfs(self, path: Path, options: str) -> None: ...

    async def unmount(self, path: Path) -> None: ...


def mounted_fs_type(path: Path, mountinfo: str) -> str | None:
    """The type of the filesystem mounted at ``path`` according to ``/proc/self/mountinfo``
    (the last one mounted there, which is the one visible)."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5 or " - " not in line:
            continue
        # mountinfo escapes spaces and friends in octal (\040).
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == str(path):
            found = line.split(" - ", 1)[1].split()[0]
    return found


class HostMounts:
    """``mount`` and ``umount`` in the agent's own mount namespace (the engine's too)."""

    def fs_type(self, path: Path) -> str | None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
        # mountinfo shows the path with its symbolic links resolved.
        return mounted_fs_type(path.resolve(), mountinfo)

    async def mount_tmpfs(self, path: Path, options: str) -> None:
        await _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path))

    async def unmount(self, path: Path) -> None:
        try:
            await _run("umount", str(path))
        except Unavailable:
            # Busy: detach it now; it goes once nothing uses it.
            await _run("umount", "--lazy", str(path))


async def _run(*argv: str) -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        raise Unavailable(f"{argv[0]}: {exc.strerror}") from exc
    _, stderr = await process.communicate()
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise Unavailable(f"{' '.join(argv)}: {message}")


# -- the driver ---------------------------------------------------------------------------


class TaskFiles:
    """The secrets and configs of this node's tasks, as files on the node's tmpfs."""

    def __init__(
        self, directory: Path, dependencies: Dependencies, mounts: Mounts | None = None
    ) -> None:
        self.directory = directory
        self._dependencies = dependencies
        self._mounts: Mounts = mounts or HostMounts()
        self._mounting = asyncio.Lock()

    async def prepare(self, task: Task) -> list[dict[str, Any]]:
        """Write the task's files; returns the bind mounts to add to its container. Raises
        NotFound for a secret or config that did not arrive (before anything is written)."""
        files = plan_files(task, self._dependencies)
        for name in runtime_configs(task):
            log.info(
                "task %s: config %s has a runtime target (a Windows credential spec): not mounted",
                task.id,
                name,
            )
        if not files:
            return []
        await self._ensure_mounted()
        directory = self._task_dir(task.id)
        try:
            # Synchronously: a few small writes to memory, and a cancelled controller then
            # cannot leave a half-written directory behind a concurrent ``retain``.
            _write(directory, files)
        except OSError as exc:
            raise Unavailable(
                f"writing the secrets and configs of task {task.id}: {exc.strerror}"
            ) from exc
        return [bind_mount(directory / file.name, file.target) for file in files]

    async def release(self, task_id: str) -> None:
        """Remove the task's files (idempotent; never raises)."""
        if _SAFE_NAME.fullmatch(task_id):
            shutil.rmtree(self.directory / task_id, ignore_errors=True)

    async def retain(self, task_ids: Collection[str]) -> None:
        """Remove the files of every task not in ``task_ids``."""
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return  # never mounted: nothing to remove
        for entry in entries:
            if entry.name not in task_ids:
                shutil.rmtree(entry, ignore_errors=True)

    async def unmount(self) -> None:
        """Take the tmpfs away, with every file on it, and its directories (when the node
        leaves the swarm)."""
        async with self._mounting:
            if self._mounts.fs_type(self.directory) is not None:
                await self._mounts.unmount(self.directory)
                log.info("unmounted the tmpfs of secrets and configs at %s", self.directory)
            for directory in (self.directory, self.directory.parent):
                with contextlib.suppress(OSError):  # absent, or holding something else
                    directory.rmdir()

    async def _ensure_mounted(self) -> None:
        async with self._mounting:
            kind = self._mounts.fs_type(self.directory)
            if kind is None:
                try:
                    self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                except OSError as exc:
                    raise Unavailable(f"creating {self.directory}: {exc.strerror}") from exc
                try:
                    await self._mounts.mount_tmpfs(self.directory, TMPFS_OPTIONS + NOSWAP)
                except Unavailable as exc:
                    log.warning(
                        "%s; mounting the tmpfs of secrets without noswap (a kernel before 6.4):"
                        " under memory pressure its pages may go to swap",
                        exc.message,
                    )
                    await self._mounts.mount_tmpfs(self.directory, TMPFS_OPTIONS)
                kind = self._mounts.fs_type(self.directory)
                log.info("mounted a tmpfs for secrets and configs at %s", self.directory)
            if kind != "tmpfs":
                raise Unavailable(
                    f"{self.directory} is not a tmpfs ({kind or 'nothing is mounted there'}):"
                    " refusing to write secrets there"
                )

    def _task_dir(self, task_id: str) -> Path:
        if not _SAFE_NAME.fullmatch(task_id):
            raise InvalidSpec(f"task ID {task_id!r} cannot name a directory")
        return self.directory / task_id


def _write(directory: Path, files: list[TaskFile]) -> None:
    directory.mkdir(mode=0o700, exist_ok=True)
    for file in files:
        # Written aside and renamed: an earlier attempt's file (mode 0444) is replaced whole.
        partial = directory / f".{file.name}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(file.data)
            while view:
                view = view[os.write(fd, view) :]
            # The owner first: a chown clears the set-ID bits a mode may hold.
            os.fchown(fd, file.uid, file.gid)
            os.fchmod(fd, file.mode)
        finally:
            os.close(fd)
        os.replace(partial, directory / file.name)


async def unmount_secrets(node_id: str, root: Path = DEFAULT_ROOT) -> None:
    """Take the node's tmpfs away without an agent (``Agent.unmount_secrets`` does the same)."""
    await TaskFiles(files_dir(node_id, root), Dependencies()).unmount()
