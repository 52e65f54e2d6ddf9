"""Issue #12, point 2: the rolling update's failure action, monitor and failure ratio, rollback
(automatic and `docker service rollback`) and start-first, with the stock CLI's progress display
on the 3-host lab."""

from __future__ import annotations

import threading
import time

from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
IMAGE_V2 = "swarmlet-test/busybox:v2"
FAILS = "sh -c 'exit 3'"
TASK_FAILED = "due to failure or early termination of task "


def update_status(cli: Cli, service: str) -> dict[str, str]:
    return cli.inspect("service", service).get("UpdateStatus") or {}


def args_of(cli: Cli, service: str) -> list[str]:
    return cli.inspect("service", service)["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"]  # type: ignore[no-any-return]


def running_args(cli: Cli, service: str) -> list[str]:
    """The command of each running task, by inspecting the tasks."""
    tasks = cli.inspect_tasks(service, "desired-state=running")
    return sorted(
        " ".join(t["Spec"]["ContainerSpec"]["Args"])
        for t in tasks
        if t["Status"]["State"] == "running"
    )


def test_a_failing_update_pauses_with_swarms_message_and_the_next_update_resumes(cli: Cli) -> None:
    cli.create("pause", "--stop-grace-period", "1s", "--replicas", "3", IMAGE, "sleep", "1000")
    cli.running("pause", 3)
    done = cli(
        "service", "update", "--detach=false", "--args", FAILS, "--update-parallelism", "1",
        "--update-delay", "2s", "--update-failure-action", "pause", "--update-monitor", "3s",
        "pause", timeout=90,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"service update paused: update paused {TASK_FAILED}" in done.stderr
    status = update_status(cli, "pause")
    assert status["State"] == "paused"
    assert status["Message"].startswith(f"update paused {TASK_FAILED}")
    # The first slot only: the other two still run the old command (the first one's
    # replacements, restarted with the new spec, fail again and again).
    assert running_args(cli, "pause").count("sleep 1000") == 2

    # The next update (a good command) starts a new update over every slot.
    cli.ok("service", "update", "--detach=true", "--args", "sleep 1001", "pause")
    eventually(
        lambda: running_args(cli, "pause") == ["sleep 1001"] * 3,
        timeout=60,
        what="the next update running everywhere",
    )
    eventually(
        lambda: update_status(cli, "pause").get("State") == "completed",
        what="the update completed",
    )


def test_a_failing_update_rolls_back_with_the_clis_rollback_line(cli: Cli) -> None:
    cli.create("rollsback", "--stop-grace-period", "1s", "--replicas", "3", IMAGE, "sleep", "1000")
    cli.running("rollsback", 3)
    done = cli(
        "service", "update", "--detach=false", "--args", FAILS, "--update-parallelism", "1",
        "--update-failure-action", "rollback", "--update-monitor", "3s", "rollsback",
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [rollback] = [line for line in lines if line.startswith("rollback: ")]
    assert rollback.startswith(f"rollback: update rolled back {TASK_FAILED}")
    assert any(
        line.startswith("overall progress: rolling back update: 3 out of 3 tasks") for line in lines
    )
    assert lines[-1] == "verify: Service rollsback converged"
    assert args_of(cli, "rollsback") == ["sleep", "1000"]
    assert "PreviousSpec" not in cli.inspect("service", "rollsback")
    assert running_args(cli, "rollsback") == ["sleep 1000"] * 3
    eventually(
        lambda: update_status(cli, "rollsback").get("State") == "rollback_completed",
        what="the rollback completed",
    )
    assert update_status(cli, "rollsback")["Message"] == "rollback completed"


def test_service_rollback_restores_the_previous_spec(cli: Cli) -> None:
    cli.create("manual", "--stop-grace-period", "1s", "--replicas", "2", IMAGE, "sleep", "1000")
    cli.running("manual", 2)
    cli.ok("service", "update", "--detach=false", "--image", IMAGE_V2, "manual", timeout=90)
    assert update_status(cli, "manual")["State"] == "completed"
    out = cli.ok("service", "rollback", "manual", timeout=90)
    assert "rollback: manually requested rollback" in out.splitlines()
    service = cli.inspect("service", "manual")
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == IMAGE
    # The spec rolled back from is now the previous one: a second rollback goes forward.
    assert service["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"] == IMAGE_V2
    eventually(
        lambda: update_status(cli, "manual").get("State") == "rollback_completed",
        what="the rollback completed",
    )
    images = {r["Image"] for r in cli.tasks("manual", running_only=True)}
    assert images == {IMAGE}


def test_start_first_never_drops_below_the_replica_count(cli: Cli) -> None:
    cli.create("overlap", "--stop-grace-period", "1s", "--replicas", "3", "--update-order",
               "start-first", IMAGE, "sleep", "1000")  # fmt: skip
    cli.running("overlap", 3)
    lowest: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        # Every task whose container runs, whatever it is told: an old task still counts
        # until it has stopped.
        while not stop.is_set():
            rows = cli.tasks("overlap")
            lowest.append(sum(r["CurrentState"].startswith("Running") for r in rows))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        cli.ok("service", "update", "--detach=false", "--args", "sleep 1001", "overlap",
               timeout=90)  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    assert len(lowest) > 5
    assert min(lowest) >= 3
    assert running_args(cli, "overlap") == ["sleep 1001"] * 3


def test_max_failure_ratio_and_monitor_decide_what_a_failure_is(cli: Cli) -> None:
    # 3 slots, ratio 0.5: the first failure (1/3) passes, the second (2/3) pauses. The delay
    # lets each slot's failure be seen before the next slot starts (without it, as in Swarm,
    # whether the third slot is reached first is a race with the task's exit).
    cli.create("ratio", "--stop-grace-period", "1s", "--replicas", "3", IMAGE, "sleep", "1000")
    cli.running("ratio", 3)
    cli.ok(
        "service", "update", "--detach=true", "--args", FAILS, "--update-parallelism", "1",
        "--update-delay", "2s", "--update-max-failure-ratio", "0.5", "ratio",
    )  # fmt: skip
    eventually(
        lambda: update_status(cli, "ratio").get("State") == "paused",
        timeout=60,
        what="the update paused",
    )
    assert running_args(cli, "ratio").count("sleep 1000") == 1

    # A task that fails after Monitor is not the update's failure: the update completes.
    cli.create("monitor", "--stop-grace-period", "1s", "--replicas", "2", IMAGE, "sleep", "1000")
    cli.running("monitor", 2)
    cli.ok(
        "service", "update", "--detach=true", "--args", "sh -c 'sleep 3; exit 3'",
        "--update-parallelism", "0", "--update-monitor", "1s", "monitor",
    )  # fmt: skip
    eventually(
        lambda: update_status(cli, "monitor").get("State") == "completed",
        timeout=60,
        what="the update completed",
    )
