"""The stock docker CLI against the app on a unix socket: it must parse every answer."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile

import pytest

from swarmlet.models import Node, Service
from tests.manager.api.fakes import add_node, add_task, require_engine

DOCKER = "/usr/local/bin/docker"
IMAGE = "swarmlet-test/busybox:latest"


@pytest.fixture
def cli():
    """Runs the stock CLI against a socket; needs the engine (for /info and the pass-through)."""
    require_engine()
    if not os.access(DOCKER, os.X_OK):
        message = f"no docker CLI at {DOCKER}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    config = tempfile.mkdtemp(prefix="swl-cli-")

    async def run(socket: str, *args: str, stdin: bytes | None = None) -> str:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": config,
            "DOCKER_CONFIG": config,
            "DOCKER_HOST": f"unix://{socket}",
        }
        process = await asyncio.create_subprocess_exec(
            DOCKER,
            *args,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode == 0, f"docker {' '.join(args)}: {err.decode()}"
        return out.decode()

    yield run
    shutil.rmtree(config, ignore_errors=True)


async def test_service_commands_parse_our_answers(cli, served, store, control):
    worker = add_node(store, "worker-1")

    created = await cli(served, "service", "create", "-d", "--no-resolve-image", "--name",
                        "web", "--replicas", "2", "--label", "tier=front", "-p", "8080:80",
                        IMAGE, "sleep", "1000")  # fmt: skip
    service = store.get(Service, created.strip())
    assert service.spec.name == "web"
    assert service.replicas == 2
    assert service.spec.task_template.container_spec.args == ["sleep", "1000"]
    add_task(store, service, worker, slot=1)

    listed = await cli(served, "service", "ls")
    (row,) = [line for line in listed.splitlines() if " web " in line]
    assert "replicated" in row
    assert "1/2" in row
    assert IMAGE in row
    assert "*:8080->80/tcp" in row

    tasks = await cli(served, "service", "ps", "--no-trunc", "web")
    (row,) = [line for line in tasks.splitlines() if "web.1" in line]
    assert "worker-1" in row
    assert "Running" in row

    (inspected,) = json.loads(await cli(served, "service", "inspect", "web"))
    assert inspected["ID"] == service.id
    assert inspected["Spec"]["Labels"] == {"tier": "front"}

    await cli(served, "service", "rm", "web")
    assert store.find(Service, service.id) is None


async def test_node_ls_marks_this_node(cli, served, store, control):
    add_node(store, "worker-1")
    listed = await cli(served, "node", "ls")
    rows = listed.splitlines()[1:]
    assert len(rows) == 2
    (this,) = [row for row in rows if row.startswith(f"{control.node_id} *")]
    assert "manager-1" in this
    assert "Leader" in this
    assert "Ready" in this

    await cli(served, "node", "update", "--label-add", "zone=east", "worker-1")
    (worker,) = [n for n in store.all(Node) if n.hostname == "worker-1"]
    assert worker.spec.labels == {"zone": "east"}


async def test_run_with_stdin_goes_through_the_relay(cli, served):
    out = await cli(served, "run", "--rm", "-i", IMAGE, "cat", stdin=b"hello from stdin\n")
    assert out == "hello from stdin\n"


async def test_exec_with_stdin_goes_through_the_relay(cli, served):
    container = (await cli(served, "run", "-d", "--label", "swarmlet-test=api-cli", IMAGE,
                           "sleep", "60")).strip()  # fmt: skip
    try:
        out = await cli(served, "exec", "-i", container, "cat", stdin=b"via exec\n")
        assert out == "via exec\n"
    finally:
        await cli(served, "rm", "-f", container)
