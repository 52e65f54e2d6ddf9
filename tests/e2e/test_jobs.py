"""Issue 12, point 3: jobs (`--mode replicated-job`, `--mode global-job`) with the stock CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

from swarmlet.lab.lab import docker_cli
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
WORK = ["sh", "-c", "sleep 1"]
# States of a task that has not ended (what `service ps` shows while it may still run).
NOT_ENDED = ("New", "Allocated", "Pending", "Assigned", "Accepted", "Preparing", "Ready")
NOT_ENDED += ("Starting", "Running")


def ls_row(cli: Cli, name: str) -> dict[str, str]:
    rows = cli.ok("service", "ls", "--filter", f"name={name}", "--format", "{{json .}}")
    [row] = [json.loads(line) for line in rows.splitlines() if line.strip()]
    return row  # type: ignore[no-any-return]


def watch_job(cli: Cli, name: str, completions: int, timeout: float = 120) -> int:
    """Poll `service ps` until ``completions`` tasks are Complete; the most tasks seen not
    ended at once."""
    most = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = cli.tasks(name)
        states = [row["CurrentState"].split()[0] for row in rows]
        most = max(most, sum(state in NOT_ENDED for state in states))
        if states.count("Complete") >= completions:
            return most
        time.sleep(0.1)
    raise AssertionError(f"{name}: not {completions} completions within {timeout} s: {rows}")


def test_a_replicated_job_never_runs_more_than_max_concurrent(cli: Cli) -> None:
    cli.create(
        "batch", "--mode", "replicated-job", "--replicas", "10", "--max-concurrent", "3",
        IMAGE, *WORK,
    )  # fmt: skip
    most = watch_job(cli, "batch", 10)
    assert 1 <= most <= 3
    rows = cli.tasks("batch")
    assert len(rows) == 10
    assert {row["DesiredState"] for row in rows} == {"Complete"}
    # Slots 0..9: the CLI names slot 0 after its node, as Swarm's.
    node_ids = {cli.node_id(host) for host in ("node1", "node2", "node3")}
    names = {row["Name"] for row in rows}
    assert {f"batch.{slot}" for slot in range(1, 10)} < names
    [slot_zero] = names - {f"batch.{slot}" for slot in range(1, 10)}
    assert slot_zero.removeprefix("batch.") in node_ids
    row = ls_row(cli, "batch")
    assert row["Mode"] == "replicated job"
    assert row["Replicas"] == "0/3 (10/10 completed)"
    spec = cli.inspect("service", "batch")
    assert spec["Spec"]["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 3, "TotalCompletions": 10}}
    # The CLI prints the Go struct again: an Index of 0 is omitted.
    assert spec["JobStatus"]["JobIteration"].get("Index", 0) == 0
    assert spec["JobStatus"]["LastExecution"]

    # `update --force` runs the job again: a new iteration, 10 more completions.
    cli.ok("service", "update", "--force", "--detach=true", "batch")
    assert cli.inspect("service", "batch")["JobStatus"]["JobIteration"] == {"Index": 1}
    most = watch_job(cli, "batch", 20)
    assert most <= 3
    eventually(
        lambda: ls_row(cli, "batch")["Replicas"] == "0/3 (10/10 completed)",
        what="the second run counted alone",
    )
    assert len(cli.tasks("batch")) == 20


def test_a_global_job_completes_once_on_every_host(cli: Cli) -> None:
    cli.create("everywhere", "--mode", "global-job", IMAGE, *WORK)
    watch_job(cli, "everywhere", 3)
    rows = cli.tasks("everywhere")
    assert sorted(row["Node"] for row in rows) == ["node1", "node2", "node3"]
    assert {row["DesiredState"] for row in rows} == {"Complete"}
    row = ls_row(cli, "everywhere")
    assert row["Mode"] == "global job"
    assert row["Replicas"] == "0/0 (3/3 completed)"
    assert cli.ok("service", "ls", "--filter", "mode=global-job", "-q").strip() != ""
    assert cli.ok("service", "ls", "--filter", "mode=global", "-q").strip() == ""


def test_create_without_detach_follows_the_job_to_its_end(cli: Cli) -> None:
    cli.services.append("follow")
    args = ["--mode", "replicated-job", "--replicas", "4", "--max-concurrent", "2", IMAGE, *WORK]
    out = cli.ok("service", "create", "--name", "follow", *args)
    # Without a terminal the CLI prints the lines without a progress bar.
    assert "active tasks: 2 out of 2 tasks" in out
    assert "active tasks: 0 out of 0 tasks" in out
    assert out.rstrip().endswith("job complete")
    # On a terminal, the job's progress bar too.
    cli.services.append("follow2")
    command = shlex.join([docker_cli(), "service", "create", "--name", "follow2", *args])
    env = {**os.environ, "DOCKER_HOST": cli.lab.docker_host}
    done = subprocess.run(
        ["script", "-qefc", command, "/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    screen = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", done.stdout)
    assert "job progress: 4 out of 4 complete" in screen
    assert "job complete" in screen


def test_a_job_refuses_an_update_config(cli: Cli) -> None:
    cli.services.append("never")
    err = cli.fails(
        "service", "create", "--name", "never", "--mode", "replicated-job",
        "--update-parallelism", "2", IMAGE, *WORK,
    )  # fmt: skip
    assert "update and rollback configuration is not supported for jobs" in err
    cli.create("once", "--mode", "replicated-job", IMAGE, *WORK)
    watch_job(cli, "once", 1)
    # The CLI sends the update config of `service update`; the daemon refuses it (SwarmKit's).
    err = cli.fails("service", "update", "--update-parallelism", "2", "once")
    assert err.strip() == "Error response from daemon: Jobs may not have an update config"
    assert cli.ok("service", "ls", "--filter", "mode=replicated-job", "-q").strip() != ""
