"""Issue 11, point 4: the second tutorial (dockercoins), as `make demo` runs it.

`scripts/dockercoins-tutorial.sh` against the 3-host lab with per-node engines: the images
loaded into node1's engine, a `registry` service, the images pushed to 127.0.0.1:5000, the
`dockercoins` overlay, redis and the four services pulled from the registry on every host,
webui published on 8000, the workers scaled to 10, rng made global, and everything removed.
The hashes per second the script prints are figures for docs/benchmarks.md, never asserted
here: only that the count moves at each step.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import eventually

if TYPE_CHECKING:  # at run time the module is a plugin, imported by pytest alone
    from tests.e2e.per_node import PerNodeCli

pytestmark = pytest.mark.lab
pytest_plugins = ["tests.e2e.per_node"]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dockercoins-tutorial.sh"
APPS = ("hasher", "rng", "webui", "worker")
SERVICES = ("registry", "redis", *APPS)
# The tutorial's commands, in the order the script shows them (`$ COMMAND`) before it runs them.
TUTORIAL = (
    "docker -H unix:///var/run/docker.sock save dockercoins_hasher dockercoins_rng "
    "dockercoins_webui dockercoins_worker | docker load",
    "docker service create --name registry --publish 5000:5000 registry",
    *(
        command
        for app in APPS
        for command in (
            f"docker tag dockercoins_{app} 127.0.0.1:5000/dockercoins_{app}",
            f"docker push 127.0.0.1:5000/dockercoins_{app}",
        )
    ),
    "docker network create --driver overlay --attachable dockercoins",
    "docker service create --network dockercoins --name redis redis",
    *(
        f"docker service create --network dockercoins --name {app} 127.0.0.1:5000/dockercoins_{app}"
        for app in APPS
    ),
    "docker service update webui --publish-add 8000:80 --detach=false",
    "docker service scale worker=10",
    "docker service rm rng",
    "docker service create --name rng --network dockercoins --mode global "
    "127.0.0.1:5000/dockercoins_rng",
    "docker service ps rng",
    "docker service ls -q | xargs docker service rm",
    "docker network rm dockercoins",
)
STEPS = ("1 worker", "10 workers", "10 workers, rng global")
READING = re.compile(
    r"^dockercoins: (?P<step>.+): (?P<rate>[0-9.]+) hashes/s "
    r"\(hashes (?P<before>\d+) -> (?P<after>\d+) in (?P<seconds>[0-9.]+) s\)$",
    re.M,
)


def run_tutorial(cli: PerNodeCli) -> subprocess.CompletedProcess[str]:
    """The script as `make demo` runs it, on the test lab: node1's API, and /json read from
    node1's namespace through node1's published port 8000."""
    node1 = cli.lab.host("node1")
    env = {
        **os.environ,
        "DOCKER_HOST": node1.docker_host,
        "FETCH": f"nsenter --net={node1.netns_path} busybox wget -q -O -",
        "WEBUI_URL": f"http://{node1.address}:8000/json",
    }
    return subprocess.run(
        [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=1200, check=False
    )


def transcript(stdout: str) -> str:
    """What the script printed, without the CLI's progress display (a line a second)."""
    progress = ("overall progress: ", "verify: Waiting ")
    kept = [line for line in stdout.splitlines() if not line.startswith(progress)]
    return "\n".join(line for line in kept if not re.fullmatch(r"\d+/\d+: *", line))


def dead_daemons(cli: PerNodeCli) -> list[str]:
    """The hosts whose swarmletd or engine no longer runs, with their logs' paths."""
    return [
        f"{status.host.hostname} (see {status.host.log_file})"
        for status in cli.lab.status()
        if status.pid is None or status.engine_running is False
    ]


def shown_commands(stdout: str) -> list[str]:
    return [line[2:] for line in stdout.splitlines() if line.startswith("$ ")]


def rows_after(stdout: str, command: str) -> list[list[str]]:
    """The rows of the table a command printed (its header left out), split on spaces."""
    lines = stdout.splitlines()
    start = lines.index(f"$ {command}") + 2
    rows = []
    for line in lines[start:]:
        if line.startswith(("$ ", "dockercoins: ")):
            break
        rows.append(line.split())
    return rows


def dockercoins_images(cli: PerNodeCli, hostname: str) -> set[str]:
    """The IDs of the images of dockercoins' apps in the host's engine, by any reference."""
    listed = cli.on_ok(hostname, "image", "ls", "--format", "{{.ID}} {{.Repository}}")
    return {
        image_id
        for image_id, repository in (line.split() for line in listed.splitlines() if line)
        if repository.rpartition("/")[2].startswith("dockercoins_")
    }


def leave_as_found(cli: PerNodeCli) -> None:
    """What the tutorial made, gone, whatever step it stopped at: the services, the network,
    and the images it loaded into node1 or the hosts pulled from the registry."""
    cli.cleanup()
    if "dockercoins" in cli.ok("network", "ls", "--format", "{{.Name}}").split():
        cli.ok("network", "rm", "dockercoins")
    for hostname in cli.hostnames:
        images = dockercoins_images(cli, hostname)
        if images:
            cli.on_ok(hostname, "image", "rm", "--force", *images)


def test_the_tutorial_runs_verbatim_and_mines_faster_as_it_scales(
    per_node_cli: PerNodeCli,
) -> None:
    cli = per_node_cli
    cli.services.extend(SERVICES)  # removed by the cleanup should the script stop half-way
    try:
        done = run_tutorial(cli)
        printed = f"stdout:\n{transcript(done.stdout)}\nstderr:\n{done.stderr}"
        print(printed)  # the figures, for docs/benchmarks.md (pytest -s shows them)
        assert dead_daemons(cli) == [], printed
        assert done.returncode == 0, printed
        assert shown_commands(done.stdout) == list(TUTORIAL), printed

        readings = {m["step"]: m for m in READING.finditer(done.stdout)}
        assert tuple(readings) == STEPS, printed
        one, ten, global_rng = (readings[step] for step in STEPS)
        # The count grows with the services started, again with ten workers, and again with
        # rng made global (its re-creation stops the mining for a while).
        assert int(one["after"]) > int(one["before"]), printed
        assert int(ten["before"]) >= int(one["after"]), printed
        assert int(ten["after"]) > int(ten["before"]), printed
        assert int(global_rng["after"]) > int(global_rng["before"]), printed

        # `docker service ps rng` after the global create: one running task on every host.
        rng_tasks = rows_after(done.stdout, "docker service ps rng")
        assert sorted(row[3] for row in rng_tasks) == sorted(cli.hostnames), printed
        assert {(row[4], row[5]) for row in rng_tasks} == {("Running", "Running")}, printed

        # Everything removed: no service, no network, no task container on any host's engine.
        assert cli.ok("service", "ls", "-q") == ""
        assert "dockercoins" not in cli.ok("network", "ls", "--format", "{{.Name}}").split()
        for hostname in cli.hostnames:
            eventually(
                partial(cli.no_task_containers, hostname),
                timeout=60,
                what=f"every task container on {hostname} removed",
            )
    finally:
        leave_as_found(cli)
    for hostname in cli.hostnames:
        assert dockercoins_images(cli, hostname) == set()
