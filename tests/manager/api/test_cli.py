"""The stock docker CLI against the app on a unix socket: it must parse every answer."""

from __future__ import annotations

import json

from swarmlet.models import Node, Service
from tests.manager.api.fakes import add_node, add_task

IMAGE = "swarmlet-test/busybox:latest"


async def test_service_commands_parse_our_answers(cli, served, store, control):
    worker = await add_node(store, "worker-1")

    created = await cli(served, "service", "create", "-d", "--no-resolve-image", "--name",
                        "web", "--replicas", "2", "--label", "tier=front", "-p", "8080:80",
                        IMAGE, "sleep", "1000")  # fmt: skip
    service = store.get(Service, created.strip())
    assert service.spec.name == "web"
    assert service.replicas == 2
    assert service.spec.task_template.container_spec.args == ["sleep", "1000"]
    await add_task(store, service, worker, slot=1)

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
    await add_node(store, "worker-1")
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
