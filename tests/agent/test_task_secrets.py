"""Tasks with secrets and configs, run by the controller and the worker on the fake engine:
their files are written before the container exists, mounted into it, and removed when the
task ends or leaves the node; a secret that did not arrive rejects the task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path

import pytest

from swarmlet.agent.dependencies import Dependencies
from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.task_files import TaskFiles, files_dir
from swarmlet.agent.worker import Worker
from swarmlet.aio import cancel_and_wait
from swarmlet.clock import FakeClock
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
from swarmlet.protocol import StatusUpdate
from tests.agent.conftest import Run, running
from tests.agent.mounts import FakeMounts

S = TaskState
DB = Secret(id="sdb", spec=SecretSpec(name="db", data=b"hunter2"))
NGINX = Config(id="cnginx", spec=ConfigSpec(name="nginx.conf", data=b"server {}"))
DB_REF = SecretReference(secret_id=DB.id, secret_name="db", file=FileTarget(name="db", mode=0o444))
NGINX_REF = ConfigReference(
    config_id=NGINX.id, config_name="nginx.conf", file=FileTarget(name="/etc/nginx.conf")
)
DATA_MOUNT = {"Type": "volume", "Source": "data", "Target": "/data"}


@pytest.fixture
def engine(clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(clock)
    engine.add_image("busybox")
    engine.add_image("exits0:1", exit_code=0)
    return engine


@pytest.fixture
def dependencies() -> Dependencies:
    dependencies = Dependencies()
    dependencies.replace([DB], [NGINX])
    return dependencies


@pytest.fixture
def files(tmp_path: Path, dependencies: Dependencies) -> TaskFiles:
    return TaskFiles(files_dir("node1", tmp_path), dependencies, FakeMounts())


@pytest.fixture
def start(
    engine: FakeEngine, clock: FakeClock, files: TaskFiles
) -> Callable[..., AbstractAsyncContextManager[Run]]:
    """`running` on the fake engine, with the task files unless ``files=`` says otherwise."""
    return partial(running, engine=engine, clock=clock, files=files)


async def test_the_container_gets_read_only_binds_of_its_files(
    start, make_task, engine, files, pump
):
    task = make_task(secrets=[DB_REF], configs=[NGINX_REF], mounts=[DATA_MOUNT])
    async with start(task) as run:
        await pump()
        assert run.statuses[-1].state == S.RUNNING
        container = engine.container(run.controller.container_name)
        task_dir = files.directory / task.id
        assert container.host_config["Mounts"] == [
            DATA_MOUNT,  # the spec's own come first
            {
                "Type": "bind",
                "Source": str(task_dir / "secret-0"),
                "Target": "/run/secrets/db",
                "ReadOnly": True,
            },
            {
                "Type": "bind",
                "Source": str(task_dir / "config-0"),
                "Target": "/etc/nginx.conf",
                "ReadOnly": True,
            },
        ]
        assert (task_dir / "secret-0").read_bytes() == b"hunter2"
        assert (task_dir / "config-0").read_bytes() == b"server {}"


async def test_a_secret_that_did_not_arrive_rejects_the_task(
    start, make_task, engine, dependencies, pump
):
    dependencies.replace([], [NGINX])
    async with start(make_task(secrets=[DB_REF])) as run:
        await pump()
    last = run.statuses[-1]
    assert (last.state, last.message, last.err) == (S.REJECTED, "preparing", "secret sdb not found")
    assert engine.containers == {}


async def test_an_agent_without_files_rejects_a_task_with_secrets(start, make_task, engine, pump):
    async with start(make_task(secrets=[DB_REF]), files=None) as run:
        await pump()
    assert run.statuses[-1].state == S.REJECTED
    assert run.statuses[-1].err == "this agent cannot deliver secrets and configs"
    assert engine.containers == {}


async def test_files_go_when_the_task_ends(start, make_task, files, pump):
    async with start(make_task("exits0:1", secrets=[DB_REF])) as run:
        await pump()
    assert run.statuses[-1].state == S.COMPLETE
    assert list(files.directory.iterdir()) == []


async def test_files_go_when_the_task_is_shut_down(start, make_task, files, pump):
    task = make_task(secrets=[DB_REF])
    async with start(task) as run:
        await pump()
        assert [p.name for p in files.directory.iterdir()] == [task.id]
        run.controller.update(task.replace(desired_state=S.SHUTDOWN))
        await pump()
    assert run.statuses[-1].state == S.SHUTDOWN
    assert list(files.directory.iterdir()) == []


async def test_the_worker_removes_the_files_of_an_unassigned_task(
    engine, clock, files, make_task, pump
):
    async def report(updates: list[StatusUpdate]) -> None:
        pass

    worker = Worker(engine, "node1", report, clock, files=files)
    job = asyncio.create_task(worker.run())
    try:
        keep, drop = make_task(slot=1, secrets=[DB_REF]), make_task(slot=2, secrets=[DB_REF])
        await worker.assign([keep, drop])
        await pump()
        assert sorted(p.name for p in files.directory.iterdir()) == sorted([keep.id, drop.id])
        await worker.assign([keep])
        await pump()
        assert [p.name for p in files.directory.iterdir()] == [keep.id]
        assert [c.name for c in engine.containers.values()] == [f"web.1.{keep.id}"]
    finally:
        await cancel_and_wait(job)
