"""What the tests of secrets and configs share: a fake of the host's mounts, and the root check.

``FakeMounts`` pretends to mount a tmpfs on a plain directory of the test's, so the file
writer is tested without root. The tests that mount a real tmpfs (and run a real container)
need root: without it they skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from swarmlet.errors import Unavailable


class FakeMounts:
    def __init__(self, fs_type: str | None = None, noswap: bool = True) -> None:
        # What is mounted where; a test may say a directory is something else than a tmpfs.
        self.mounted: dict[Path, str] = {}
        self.options: dict[Path, str] = {}
        self._preset = fs_type
        self._noswap = noswap  # False: a kernel before 6.4

    def fs_type(self, path: Path) -> str | None:
        return self.mounted.get(path, self._preset)

    async def mount_tmpfs(self, path: Path, options: str) -> None:
        assert path.is_dir()
        assert "mode=0700" in options
        if "noswap" in options and not self._noswap:
            raise Unavailable(f"mount -t tmpfs -o {options} tmpfs {path}: bad option")
        self.mounted[path] = "tmpfs"
        self.options[path] = options

    async def unmount(self, path: Path) -> None:
        # What was on the tmpfs goes with it.
        del self.mounted[path]
        for entry in path.iterdir():
            shutil.rmtree(entry)


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail("CI=true and a test that mounts a tmpfs: needs root")
    pytest.skip("mounting a tmpfs needs root")
