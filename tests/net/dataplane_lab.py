"""What the data plane tests share: the root check and a shell helper.

They need root, ``ip``, ``nsenter``, ``unshare`` and ``/bin/busybox``: without them they skip,
except under ``CI=true``, where they fail. Their namespaces and links are named ``swlt-dp-…``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Runs the data plane's API inside a host namespace (see its docstring).
HELPER = str(Path(__file__).with_name("dataplane_host.py"))
BUSYBOX = "/bin/busybox"
PREFIX = "swlt-dp-"


def fail_or_skip(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def require_kernel() -> None:
    if os.geteuid() != 0:
        fail_or_skip("the data plane tests need root")
    if missing := [c for c in ("ip", "nsenter", "unshare") if shutil.which(c) is None]:
        fail_or_skip(f"the data plane tests need {', '.join(missing)}")
    if not Path(BUSYBOX).exists():
        fail_or_skip(f"the data plane tests need {BUSYBOX} (busybox-static)")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done
