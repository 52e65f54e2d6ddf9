"""Issue 12, point 5: `docker service logs` with each flag gives Swarm's format; with one host
stopped it returns (or keeps following the others) instead of hanging."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from swarmlet.lab.lab import docker_cli
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
# Two lines on stdout two seconds apart, one on stderr, then quiet until stopped.
SPEAK = (
    "echo one; sleep 2; echo two; echo oops >&2; trap 'exit 0' TERM; while true; do sleep 0.2; done"
)
# A numbered line every half second.
TICK = "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
# Generous bounds: a command that hangs fails the test; how fast it is, is not asserted.
RETURNS_WITHIN = 60


def running_tasks(cli: Cli, service: str) -> list[dict[str, Any]]:
    return [
        r for r in cli.tasks(service, running_only=True) if r["CurrentState"].startswith("Running")
    ]


def logs(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("service", "logs", *args, timeout=RETURNS_WITHIN)


class Follower:
    """`docker service logs -f ...` running, its stdout lines read as they come."""

    def __init__(self, cli: Cli, *args: str) -> None:
        env = {**os.environ, "DOCKER_HOST": cli.lab.docker_host}
        self.process = subprocess.Popen(
            [docker_cli(), "service", "logs", "-f", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def until(self, check: Any, timeout: float = 60, what: str = "") -> None:
        """Read lines until ``check(all lines so far)`` holds (bounded)."""
        deadline = time.monotonic() + timeout
        while not check(self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"not within {timeout} s: {what}; read: {self.seen[-20:]}"
            assert self.process.poll() is None, f"the command ended: {self.process.stderr.read()}"  # type: ignore[union-attr]
            try:
                self.seen.append(self.lines.get(timeout=min(left, 1)))
            except queue.Empty:
                continue

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def test_every_flag_gives_swarms_format(cli: Cli) -> None:
    service_id = cli.create(
        "lg", "--replicas", "3", "--stop-grace-period", "1s", IMAGE, "sh", "-c", SPEAK
    )
    cli.running("lg", 3)
    eventually(lambda: logs(cli, "lg").stderr.count("oops") == 3, what="every task's lines written")
    tasks = running_tasks(cli, "lg")
    node_ids = {host: cli.node_id(host) for host in {t["Node"] for t in tasks}}
    # Three replicas: no padding after the node name.
    prefixes = {t["ID"]: f"{t['Name']}.{t['ID'][:12]}@{t['Node']}    | " for t in tasks}

    done = logs(cli, "lg")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        p + line for p in prefixes.values() for line in ("one", "two")
    )
    assert sorted(done.stderr.splitlines()) == sorted(p + "oops" for p in prefixes.values())

    out = logs(cli, "--no-task-ids", "lg").stdout
    assert sorted(out.splitlines()) == sorted(
        f"{t['Name']}@{t['Node']}    | {line}" for t in tasks for line in ("one", "two")
    )
    out = logs(cli, "--no-trunc", "lg").stdout
    assert sorted(out.splitlines()) == sorted(
        f"{t['Name']}.{t['ID']}@{t['Node']}    | {line}" for t in tasks for line in ("one", "two")
    )
    out = logs(cli, "--no-resolve", "lg").stdout
    assert sorted(out.splitlines()) == sorted(
        f"{service_id}.{t['Name'].split('.')[1]}.{t['ID'][:12]}@{node_ids[t['Node']]}    | {line}"
        for t in tasks
        for line in ("one", "two")
    )
    raw = logs(cli, "--raw", "lg")
    assert sorted(raw.stdout.splitlines()) == ["one"] * 3 + ["two"] * 3
    assert raw.stderr.splitlines() == ["oops"] * 3
    # Details: none but the context, which the CLI takes out; the space after them stays.
    out = logs(cli, "--details", "lg").stdout
    assert sorted(out.splitlines()) == sorted(
        p + " " + line for p in prefixes.values() for line in ("one", "two")
    )
    # The last two lines of each task: "two" on stdout, "oops" on stderr.
    tail = logs(cli, "--tail", "2", "lg")
    assert sorted(tail.stdout.splitlines()) == sorted(p + "two" for p in prefixes.values())
    assert sorted(tail.stderr.splitlines()) == sorted(p + "oops" for p in prefixes.values())

    stamped = logs(cli, "--timestamps", "lg").stdout.splitlines()
    assert len(stamped) == 6
    for line in stamped:
        stamp, _, rest = line.partition(" ")
        assert re.fullmatch(STAMP, stamp), line
        assert rest in {p + text for p in prefixes.values() for text in ("one", "two")}

    # One task by its ID: its lines only; its slot's own width, so no padding either.
    task = tasks[0]
    out = logs(cli, "-t", task["ID"]).stdout.splitlines()
    assert [line.partition(" ")[2] for line in out] == [
        prefixes[task["ID"]] + "one",
        prefixes[task["ID"]] + "two",
    ]
    # Since a second after its "one": only "two" (and "oops" on stderr).
    one_at = datetime.strptime(
        out[0].partition(" ")[0][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ"
    ).replace(tzinfo=UTC)
    since = (one_at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    later = logs(cli, "--since", since, task["ID"])
    assert later.stdout.splitlines() == [prefixes[task["ID"]] + "two"]
    assert later.stderr.splitlines() == [prefixes[task["ID"]] + "oops"]

    assert logs(cli, "nope").stderr.strip() == "no such task or service: nope"


def test_follow_streams_and_picks_up_tasks_started_later(cli: Cli) -> None:
    cli.create("lf", "--replicas", "3", "--stop-grace-period", "1s", IMAGE, "sh", "-c", TICK)
    cli.running("lf", 3)
    follower = Follower(cli, "lf")
    try:
        slots = re.compile(r"^lf\.(\d+)\.[a-z0-9]{12}@node\d    \| tick \d+$")

        def from_slots(wanted: set[str]) -> Any:
            return lambda seen: wanted <= {m.group(1) for line in seen if (m := slots.match(line))}

        follower.until(from_slots({"1", "2", "3"}), what="ticks of the three tasks")
        assert all(slots.match(line) for line in follower.seen), follower.seen
        cli.ok("service", "scale", "--detach", "lf=4")
        # The CLI padded for three replicas: a fourth slot is as wide.
        follower.until(from_slots({"4"}), what="the ticks of a task started later")
    finally:
        follower.stop()


def test_a_stopped_host_does_not_hang_the_logs(cli: Cli) -> None:
    cli.create("ld", "--replicas", "3", "--stop-grace-period", "1s", IMAGE, "sh", "-c", TICK)
    cli.running("ld", 3)
    eventually(lambda: {t["Node"] for t in running_tasks(cli, "ld")} == {"node1", "node2", "node3"})
    others = {t["ID"][:12] for t in running_tasks(cli, "ld") if t["Node"] != "node3"}
    node3 = cli.node_id("node3")
    cli.lab.stop("node3")
    try:
        done = logs(cli, "ld")
        printed = {
            m.group(1)
            for line in done.stdout.splitlines()
            if (m := re.match(r"^ld\.\d\.([a-z0-9]{12})@", line))
        }
        assert others <= printed
        assert done.returncode == 1
        assert done.stderr.strip().startswith(
            "error from daemon in stream: Error grabbing logs: rpc error: code = Unknown desc ="
            " warning: incomplete log stream. some logs could not be retrieved for the following"
            " reasons: "
        )
        assert f"node {node3} " in done.stderr

        follower = Follower(cli, "ld")
        try:

            def ticks_of_the_others(count: int) -> Any:
                def enough(seen: list[str]) -> bool:
                    return all(
                        sum(f".{task}@" in line for line in seen) >= count for task in others
                    )

                return enough

            # The others' old lines, then new ones as they come: the stream goes on.
            follower.until(ticks_of_the_others(5), what="the other hosts' ticks")
            before = len(follower.seen)
            follower.until(lambda seen: len(seen) >= before + 4, what="more ticks")
        finally:
            follower.stop()
    finally:
        cli.lab.start("node3")
