"""Issue #12, point 4: the restart policy on the 3-host lab, with the stock CLI: the condition,
MaxAttempts within a Window across a manager restart, the replacement shown Ready during the
delay (as in the first tutorial), and a missing image retried no faster than the delay."""

from __future__ import annotations

import time
from datetime import datetime

from swarmlet.lab.lab import Lab
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"


def created_at(task: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(task["CreatedAt"])[:26].rstrip("Z"))


def test_the_replacement_waits_ready_above_its_failed_predecessor(cli: Cli) -> None:
    cli.create("ha", "--restart-delay", "20s", IMAGE, "sh", "-c", "sleep 1; exit 1")

    def ready_above_failed() -> list[str] | None:
        table = cli.ok("service", "ps", "ha").splitlines()
        # Prepared by its agent (it passes through Assigned, Preparing) and left waiting.
        return table if len(table) == 3 and table[1].split()[4:6] == ["Ready", "Ready"] else None

    table = eventually(ready_above_failed, what="a prepared replacement above the failed task")
    top, below = table[1].split(), table[2].split()
    # ID NAME IMAGE NODE DESIRED CURRENT...: `ha.1 ... Ready Ready 1 second ago`.
    assert top[1] == "ha.1"
    assert top[4:6] == ["Ready", "Ready"]
    assert below[1:3] == ["\\_", "ha.1"]
    assert below[5:7] == ["Shutdown", "Failed"]


def test_condition_none_and_on_failure(cli: Cli) -> None:
    cli.create("never", "--restart-condition", "none", "--restart-delay", "1s", IMAGE, "sh",
               "-c", "exit 1")  # fmt: skip
    cli.create("clean", "--restart-condition", "on-failure", "--restart-delay", "1s", IMAGE,
               "sh", "-c", "exit 0")  # fmt: skip
    cli.create("dirty", "--restart-condition", "on-failure", "--restart-delay", "1s", IMAGE,
               "sh", "-c", "sleep 1; exit 2")  # fmt: skip
    eventually(lambda: len(cli.tasks("dirty")) >= 3, what="on-failure restarting a failure")
    # Meanwhile (3 s and more) the other two ended once and stayed so.
    for name, state in (("never", "Failed"), ("clean", "Complete")):
        [row] = cli.tasks(name)
        assert row["CurrentState"].startswith(state)
        assert row["DesiredState"] == "Shutdown"


def test_max_attempts_within_a_window_survive_a_manager_restart(cli: Cli, lab: Lab) -> None:
    cli.create("twice", "--restart-condition", "on-failure", "--restart-max-attempts", "2",
               "--restart-window", "1m", "--restart-delay", "2s", IMAGE, "sh", "-c",
               "sleep 1; exit 3")  # fmt: skip
    eventually(lambda: len(cli.tasks("twice")) >= 2, what="the first restart")
    # The manager restarts between the restarts: the attempts made are not forgotten.
    lab.stop("node1")
    lab.start("node1")
    eventually(
        lambda: [r["CurrentState"].split()[0] for r in cli.tasks("twice")] == ["Failed"] * 3,
        timeout=60,
        what="three failed tasks: the first and its two restarts",
    )
    time.sleep(5)  # two more delays: no fourth task
    assert len(cli.tasks("twice")) == 3


def test_a_missing_image_is_retried_no_faster_than_the_delay(cli: Cli) -> None:
    cli.create("absent", "--restart-delay", "3s", "swarmlet-test/nope:2")
    eventually(lambda: len(cli.inspect_tasks("absent")) >= 4, timeout=60, what="four attempts")
    tasks = sorted(cli.inspect_tasks("absent"), key=created_at)
    gaps = [
        (b - a).total_seconds()
        for a, b in zip(map(created_at, tasks), map(created_at, tasks[1:]), strict=False)
    ]
    assert all(gap >= 3 for gap in gaps), gaps
    assert {str(t["Status"]["State"]) for t in tasks if t["DesiredState"] != "running"} <= {  # type: ignore[index]
        "rejected"
    }
