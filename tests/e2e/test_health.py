"""Issue 12, point 1: healthchecks in tasks, with the stock CLI on the 3-host lab.

An unhealthy task fails with Swarm's error and is replaced; a task not yet healthy is Starting
and gets no traffic through its VIP, ``tasks.<name>`` or the routing mesh, and gets it once
healthy; once unhealthy it leaves all three before its container is stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from swarmlet.lab.lab import Lab
from tests.e2e.conftest import Cli, eventually
from tests.e2e.test_networks import (
    IDLE,
    IMAGE,
    WEB,
    container_of,
    fetch_from,
    fetch_on_host,
    resolved,
)

UNHEALTHY = "task: non-zero exit (137): dockerexec: unhealthy container"
PORT = "8011"


def task_container(cli: Cli, task_id: str) -> str:
    return cli.ok("ps", "-aq", "--filter", f"label=com.docker.swarm.task.id={task_id}").strip()


def test_an_unhealthy_task_fails_with_swarms_error_and_is_replaced(cli: Cli) -> None:
    cli.create(
        "sick",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "sleep",
        "1d",
    )

    def failed() -> list[dict[str, str]]:
        return [row for row in cli.tasks("sick") if row["CurrentState"].startswith("Failed")]

    (row, *_) = eventually(failed, timeout=60, what="a task failed as unhealthy")
    assert UNHEALTHY in row["Error"]
    task = json.loads(cli.ok("inspect", row["ID"]))[0]
    status = task["Status"]
    assert (status["State"], status["Message"], status["Err"]) == ("failed", "starting", UNHEALTHY)
    assert status["ContainerStatus"]["ExitCode"] == 137
    # Its container is stopped (killed after the 1 s grace period: sleep ignores SIGTERM).
    assert (
        json.loads(cli.ok("inspect", task_container(cli, row["ID"])))[0]["State"]["ExitCode"] == 137
    )
    # The restart policy replaces it: a newer task of the same slot, desired Running.
    eventually(
        lambda: any(
            r["ID"] != row["ID"] and r["Name"] == row["Name"] and r["DesiredState"] == "Running"
            for r in cli.tasks("sick")
        ),
        timeout=30,
        what="a replacement",
    )


@pytest.fixture
def network(cli: Cli) -> Iterator[str]:
    cli.ok("network", "create", "--driver", "overlay", "healthnet")
    yield "healthnet"
    cli.cleanup()
    cli.services.clear()
    cli("network", "rm", "healthnet")


def test_no_traffic_until_healthy_and_none_once_unhealthy(cli: Cli, lab: Lab, network: str) -> None:
    cli.create("client", "--stop-grace-period", "1s", "--network", network, IMAGE, *IDLE)
    cli.running("client", 1)
    client = container_of(cli, "client")
    cli.create(
        "slow",
        "--network",
        network,
        "--publish",
        f"{PORT}:80",
        # Healthy once /tmp/ok exists; failures in the first minute do not count.
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-start-period",
        "120s",
        # httpd, PID 1, ignores SIGTERM: once unhealthy it lives 10 s more, being stopped.
        "--stop-grace-period",
        "10s",
        IMAGE,
        *WEB,
    )
    mesh = f"http://{lab.host('node2').address}:{PORT}/"

    def starting() -> dict[str, str] | None:
        rows = cli.tasks("slow", running_only=True)
        return rows[0] if rows and rows[0]["CurrentState"].startswith("Starting") else None

    row = eventually(starting, timeout=60, what="slow's task Starting")
    container = eventually(lambda: task_container(cli, row["ID"]), what="its container")
    task = json.loads(cli.ok("inspect", row["ID"]))[0]
    (address,) = [
        a["Addresses"][0].split("/")[0]
        for a in task["NetworksAttachments"]
        if a["Network"]["Spec"]["Name"] == network
    ]
    # The server answers on its own address: it is up, only not healthy yet.
    name = eventually(lambda: fetch_from(cli, client, f"http://{address}/"), what="httpd up")
    assert task["Status"]["State"] == "starting"
    # Nothing reaches it through its VIP, tasks.slow or the mesh.
    assert resolved(cli, client, "tasks.slow") == set()
    assert fetch_from(cli, client, "http://slow/") == ""
    assert fetch_on_host(lab, "node1", mesh) == ""
    assert cli.tasks("slow", running_only=True)[0]["CurrentState"].startswith("Starting")

    cli.ok("exec", container, "touch", "/tmp/ok")
    cli.running("slow", 1)
    assert eventually(lambda: fetch_from(cli, client, "http://slow/"), what="the VIP") == name
    assert eventually(lambda: resolved(cli, client, "tasks.slow")) == {address}
    assert eventually(lambda: fetch_on_host(lab, "node1", mesh), what="the mesh") == name

    # Unhealthy: out of DNS, the VIP and the mesh while its container still runs.
    cli.ok("exec", container, "rm", "/tmp/ok")

    def gone_while_alive() -> bool:
        alive = json.loads(cli.ok("inspect", container))[0]["State"]["Running"]
        out = (
            not resolved(cli, client, "tasks.slow")
            and fetch_from(cli, client, "http://slow/") == ""
        )
        assert alive, "stopped before it left the load balancer"
        return out

    eventually(gone_while_alive, timeout=20, what="the unhealthy task out of the load balancer")
    assert fetch_on_host(lab, "node1", mesh) == ""
    eventually(
        lambda: any(r["ID"] == row["ID"] and UNHEALTHY in r["Error"] for r in cli.tasks("slow")),
        timeout=30,
        what="the task failed as unhealthy",
    )
