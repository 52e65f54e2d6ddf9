"""Pytest helpers for tests that need a real lab (root, an engine, network namespaces).

    from swarmlet.lab.testing import TEST_LAB, lab_running

    @pytest.fixture(scope="session")
    def lab():
        with lab_running(TEST_LAB, nodes=3) as running:
            yield running

(as tests/e2e/conftest.py does). Each lab config can be up once per test run.

A test that cannot have a lab is skipped, except under `CI=true`, where it fails: CI must
never pass by skipping the tests that matter most.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from swarmlet.lab import api
from swarmlet.lab.lab import Lab
from swarmlet.lab.plan import EngineMode, LabConfig

# The tests' lab, apart from the default one, so a `make run` lab survives a test run.
TEST_LAB = LabConfig.named("swlt", "192.168.253")

# Run the lab tests against another daemon: a command line, e.g. the stand-in
# "python tests/lab/fake_swarmletd.py".
SWARMLETD_ENV = "SWARMLET_LAB_SWARMLETD"

LOCK_WAIT_S = 900
REQUIRED_COMMANDS = ("ip", "nsenter", "nft", "dockerd", "docker")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def with_daemon_override(config: LabConfig) -> LabConfig:
    """The config with $SWARMLET_LAB_SWARMLETD in place of the default swarmletd, if set."""
    command = os.environ.get(SWARMLETD_ENV)
    if not command or config.swarmletd != LabConfig().swarmletd:
        return config
    return config.model_copy(update={"swarmletd": tuple(shlex.split(command))})


def missing_prerequisite(config: LabConfig) -> str | None:
    """Why this machine cannot run the lab, or None."""
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [name for name in REQUIRED_COMMANDS if shutil.which(name) is None]
    if missing:
        return f"the lab needs {', '.join(missing)} (run scripts/bootstrap.sh)"
    if not Path("/proc/self/ns/net").exists():
        return "the kernel has no network namespaces"
    if not api.run_sync(api.ping(config.shared_engine)):
        return f"no engine answers on {config.shared_engine} (run scripts/bootstrap.sh)"
    if (
        config.swarmletd == LabConfig().swarmletd
        and importlib.util.find_spec("swarmlet.daemon") is None
    ):
        return "swarmletd is not written yet (swarmlet.daemon is missing)"
    return None


def require_lab(config: LabConfig = TEST_LAB) -> None:
    """Skip the calling test when the lab cannot run here; under CI, fail it instead."""
    reason = missing_prerequisite(config)
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@contextmanager
def lab_running(
    config: LabConfig = TEST_LAB,
    nodes: int = 3,
    engine: EngineMode = "shared",
    form_swarm: bool = True,
    managers: int = 1,
) -> Iterator[Lab]:
    """A lab that is up for the block and gone after it."""
    with lab_reserved(config) as lab:
        lab.up(nodes, engine, form_swarm, managers=managers)
        yield lab


@contextmanager
def lab_reserved(config: LabConfig = TEST_LAB) -> Iterator[Lab]:
    """A lab not built yet, with nothing of it left before the block nor after it.

    Holds the config's lock the whole time, so test runs started side by side (several
    developers in one tree) take turns instead of tearing down each other's lab.
    """
    config = with_daemon_override(config)
    require_lab(config)
    with exclusive(config.lock_file):
        lab = Lab(config)
        lab.down()  # whatever a killed test run left behind
        try:
            yield lab
        finally:
            lab.down()


_held: set[Path] = set()  # the lab locks this process holds


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold `lock_file` (flock), waiting while another process has it."""
    if lock_file in _held:
        # A second flock from this process would wait for the first, forever.
        pytest.fail(f"this test run already holds {lock_file}: two fixtures build the same lab")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run has held {lock_file} for {LOCK_WAIT_S} s")
                time.sleep(0.5)
        _held.add(lock_file)
        try:
            yield
        finally:
            _held.discard(lock_file)
            fcntl.flock(handle, fcntl.LOCK_UN)
