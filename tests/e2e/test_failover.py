"""A swarm of three managers losing one (issue 14, points 2 and 3), with the stock docker CLI:
the leader's host crashing during a rolling update and a scale, and a manager cut off from the
other two for 60 s.

One lab of its own (``swlf``: three managers, two workers) serves both tests; each test removes
its services and leaves every host running and joined. A watcher polls ``GET /tasks`` on a
manager that stays up, so that what the orchestrator did between two CLI calls is seen too.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from swarmlet.errors import NO_LEADER
from swarmlet.lab.lab import Lab
from swarmlet.lab.plan import HostPlan, LabConfig
from swarmlet.lab.testing import lab_running
from tests.e2e.conftest import Cli, eventually

FAILOVER_LAB = LabConfig.named("swlf", "192.168.245")
MANAGERS = ("node1", "node2", "node3")
IMAGE = "swarmlet-test/busybox:latest"
SERVE = ("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done")
POLL_S = 0.15
CUT_S = 60
# Task states, in the order of the Engine API's (and SwarmKit's) TaskState.
RUNNING = "running"
TERMINAL = {"complete", "shutdown", "failed", "rejected", "remove", "orphaned"}
# Desired states with which the orchestrator still means the task to run (a stop-first
# replacement waits in ready until the task it replaces has stopped).
WANTED = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", RUNNING}


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a host's API socket (the stdlib's connection, another socket under it)."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(self._path)
        self.sock = sock


def get_json(host: HostPlan, path: str) -> Any:
    connection = UnixConnection(host.api_socket)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} on {host.hostname}: {response.status} {body!r}")
    return json.loads(body)


@dataclass(frozen=True)
class Seen:
    """A task as one poll saw it."""

    id: str
    slot: int
    state: str
    desired: str
    env: tuple[str, ...]

    @classmethod
    def of(cls, task: dict[str, Any]) -> Seen:
        container = task["Spec"]["ContainerSpec"]
        return cls(
            id=task["ID"],
            slot=task.get("Slot", 0),
            state=task["Status"]["State"],
            desired=task["DesiredState"],
            env=tuple(container.get("Env") or ()),
        )

    @property
    def running(self) -> bool:
        """Running, and meant to: the task its slot counts on (a task whose node is gone still
        reads running until its agent says otherwise, but the orchestrator has given its slot
        to another by setting its desired state past running)."""
        return self.state == RUNNING and self.desired == RUNNING


@dataclass
class TaskWatcher:
    """Polls a manager's ``GET /tasks`` for one service, and its ``GET /nodes``, every
    ``POLL_S`` and keeps every poll.

    Polls that fail (the manager answering 503 for a moment, say) are counted, not kept.
    """

    host: HostPlan
    service_id: str
    polls: list[dict[str, Seen]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each poll was answered
    nodes: list[dict[str, str]] = field(default_factory=list)  # each node's state by hostname
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="task-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def poll(self) -> dict[str, Seen]:
        filters = urllib.parse.quote(json.dumps({"service": [self.service_id]}))
        tasks = get_json(self.host, f"/tasks?filters={filters}")
        return {t["ID"]: Seen.of(t) for t in tasks if t["ServiceID"] == self.service_id}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                found = self.poll()
                states = {
                    n["Description"]["Hostname"]: n["Status"]["State"]
                    for n in get_json(self.host, "/nodes")
                }
                self.polls.append(found)
                self.nodes.append(states)
                self.times.append(time.monotonic())
            except (OSError, RuntimeError, http.client.HTTPException) as exc:
                self.failures.append(str(exc))
            self._stop.wait(POLL_S)

    def down_between(self, start: float, end: float) -> set[str]:
        """The nodes some poll answered between ``start`` and ``end`` saw Down."""
        return {
            hostname
            for states, at in zip(self.nodes, self.times, strict=True)
            if start <= at <= end
            for hostname, state in states.items()
            if state == "down"
        }

    def doubled_slots(self) -> list[tuple[int, int, list[str]]]:
        """(poll number, slot, task IDs) of every poll that saw a slot with two running tasks."""
        found = []
        for number, poll in enumerate(self.polls):
            by_slot: dict[int, list[str]] = {}
            for seen in poll.values():
                if seen.running:
                    by_slot.setdefault(seen.slot, []).append(seen.id)
            found += [(number, s, ids) for s, ids in by_slot.items() if len(ids) > 1]
        return found

    def lost(self, final: dict[str, Seen], replicas: int) -> list[str]:
        """Every way a task was lost, as sentences (none, if no task was).

        A task is lost when:
        - its slot is left without a running task at the end: ``final`` has exactly
          ``replicas`` tasks running (state and desired state running), each in a slot of its
          own;
        - it vanished from the store while the orchestrator still wanted it: a task that some
          poll saw with a desired state of running (or ready, a replacement waiting its turn)
          is either still in the store at the end, or its last poll saw it terminal or with its
          desired state set past running (shut down or replaced by the orchestrator);
        - it was wanted and is neither running nor given up at the end: every task still in
          the store that some poll saw wanted is running at the end, or terminal, or no longer
          wanted (a task that failed is replaced in its slot, which the first rule checks).
        """
        problems = []
        running = [s for s in final.values() if s.running]
        slots = sorted(s.slot for s in running)
        if len(set(slots)) != len(slots) or len(slots) != replicas:
            problems.append(f"running slots at the end {slots}, not {replicas} of their own")
        last_seen: dict[str, Seen] = {}
        wanted: set[str] = set()
        for poll in self.polls:
            for seen in poll.values():
                last_seen[seen.id] = seen
                if seen.desired in WANTED:
                    wanted.add(seen.id)
        for task_id in sorted(wanted):
            last = last_seen[task_id]
            now = final.get(task_id)
            if now is None:
                if last.desired in WANTED and last.state not in TERMINAL:
                    problems.append(f"task {task_id} (slot {last.slot}) vanished: last {last}")
            elif now.desired in WANTED and not now.running and now.state not in TERMINAL:
                problems.append(f"task {task_id} (slot {now.slot}) wanted but not running: {now}")
        return problems


class FailoverCli(Cli):
    def on_ok(self, hostname: str, *args: str) -> str:
        done = self.on(hostname, *args)
        assert done.returncode == 0, f"docker {' '.join(args)} on {hostname}: {done.stderr}"
        return done.stdout

    def statuses(self, hostname: str) -> dict[str, str]:
        """`node ls` on ``hostname``: each node's MANAGER STATUS by hostname."""
        rows = self.on_ok(hostname, "node", "ls", "--format", "{{.Hostname}}={{.ManagerStatus}}")
        return dict(line.split("=", 1) for line in rows.splitlines() if line)

    def leader(self, hostname: str) -> str | None:
        found = [h for h, status in self.statuses(hostname).items() if status == "Leader"]
        return found[0] if len(found) == 1 else None

    def service_create(self, hostname: str, name: str, *args: str) -> str:
        self.services.append(name)
        return self.on_ok(hostname, "service", "create", "-d", "--name", name, *args).strip()

    def update_state(self, hostname: str, service: str) -> str:
        return self.on_ok(
            hostname,
            "service",
            "inspect",
            service,
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
        ).strip()

    def converged(self, hostname: str, service: str, replicas: int) -> bool:
        """Exactly ``replicas`` tasks are meant to run, each running, one in each slot."""
        rows = [
            json.loads(line)
            for line in self.on_ok(
                hostname,
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{json .}}",
                service,
            ).splitlines()
            if line
        ]
        states = [r["CurrentState"].split()[0] for r in rows]
        names = {r["Name"] for r in rows}
        return states.count("Running") == replicas == len(rows) == len(names)

    def node_ready(self, hostname: str) -> bool:
        """Every node Ready, as `node ls` on ``hostname`` shows them."""
        rows = self.on_ok(hostname, "node", "ls", "--format", "{{.Status}}").split()
        return bool(rows) and set(rows) == {"Ready"}

    def remove_services(self, hostname: str) -> None:
        if self.services:
            self.on(hostname, "service", "rm", *self.services)
        eventually(
            lambda: self.on_ok(hostname, "service", "ls", "-q") == "",
            what="the services removed",
        )
        self.services.clear()


def member_pids(host: HostPlan) -> list[int]:
    """The PIDs of the etcd member of the host (by its data directory, in /proc)."""
    flag = f"--data-dir={host.state_dir / 'etcd'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if flag in argv and any(arg.endswith(b"etcd") for arg in argv[:4]):
            found.append(int(entry.name))
    return found


def crash(lab: Lab, hostname: str) -> None:
    """The host crashes: its etcd member and its swarmletd are SIGKILLed (its containers run
    on, on the shared engine)."""
    host = lab.host(hostname)
    members = member_pids(host)
    assert members, f"{hostname} runs no etcd member"
    for pid in members:
        os.kill(pid, signal.SIGKILL)
    assert lab.stop(hostname)
    eventually(lambda: member_pids(host) == [], timeout=10, what=f"{hostname}'s member gone")


@pytest.fixture(scope="module")
def failover_lab() -> Iterator[Lab]:
    with lab_running(FAILOVER_LAB, nodes=5, managers=3) as lab:
        yield lab


@pytest.fixture
def cli(failover_lab: Lab) -> Iterator[FailoverCli]:
    lab = failover_lab
    cli = FailoverCli(lab)
    for hostname in MANAGERS:
        lab.start(hostname)  # a test that failed with a host stopped leaves it running
        lab.heal(hostname)
    eventually(
        lambda: (
            sorted(cli.statuses("node2")[h] for h in MANAGERS)
            == ["Leader", "Reachable", "Reachable"]
        ),
        timeout=60,
        what="one leader and two reachable managers",
    )
    yield cli
    survivor = next(h for h in MANAGERS if cli.on(h, "service", "ls").returncode == 0)
    cli.remove_services(survivor)


def test_the_leader_dies_during_a_rolling_update_and_a_scale(cli: FailoverCli) -> None:
    """Point 2: the leader's host crashes (swarmletd and etcd member SIGKILLed) while a
    service of 10 replicas rolls out a new spec and is scaled to 20, both asked through
    another manager. A new leader takes over and finishes the update; exactly 20 tasks run
    the new spec; the watcher never saw a slot with two running tasks, and no task was lost
    (`TaskWatcher.lost`)."""
    lab = cli.lab
    leader = cli.leader("node1")
    assert leader is not None
    survivor, other = (h for h in MANAGERS if h != leader)
    service_id = cli.service_create(
        survivor,
        "roll",
        "--replicas",
        "10",
        "--update-parallelism",
        "2",
        "--update-delay",
        "1s",
        "--update-monitor",
        "2s",
        "--stop-grace-period",
        "1s",
        "--env",
        "GEN=1",
        IMAGE,
        *SERVE,
    )
    eventually(lambda: cli.converged(survivor, "roll", 10), timeout=60, what="10 tasks running")

    watcher = TaskWatcher(lab.host(survivor), service_id)
    watcher.start()
    try:
        cli.on_ok(other, "service", "update", "-d", "--env-add", "GEN=2", "roll")
        eventually(
            lambda: cli.update_state(survivor, "roll") == "updating",
            what="the rolling update under way",
        )
        cli.on_ok(survivor, "service", "scale", "-d", "roll=20")
        # Mid-update: the first batch replaced, the rest not yet.
        eventually(
            lambda: any(
                s.running and "GEN=2" in s.env for s in (watcher.polls or [{}])[-1].values()
            ),
            what="a task of the new spec running",
        )
        crashed_at = time.monotonic()
        crash(lab, leader)

        new_leader = eventually(
            lambda: (found := cli.leader(survivor)) not in (None, leader) and found,
            timeout=30,
            what="a new leader",
        )
        assert new_leader in (survivor, other)
        eventually(
            lambda: cli.statuses(survivor)[leader] == "Unreachable",
            timeout=30,
            what=f"{leader} unreachable",
        )
        eventually(
            lambda: cli.update_state(survivor, "roll") == "completed",
            timeout=120,
            what="the update completed",
        )
        eventually(
            lambda: cli.converged(survivor, "roll", 20), timeout=120, what="20 tasks running"
        )
    finally:
        watcher.stop()

    final = watcher.poll()
    running = [s for s in final.values() if s.running]
    assert len(running) == 20
    assert all("GEN=2" in s.env for s in running), [s for s in running if "GEN=2" not in s.env]
    assert len(watcher.polls) > 100, f"too few polls: {len(watcher.polls)} {watcher.failures}"
    assert watcher.doubled_slots() == []
    assert watcher.lost(final, 20) == []
    # The new leader finished what the dead one began: tasks of the old spec still ran after
    # the crash.
    after = next(p for p, t in zip(watcher.polls, watcher.times, strict=True) if t > crashed_at)
    assert any(s.running and "GEN=1" in s.env for s in after.values())
    # The agents moved to the new leader in time: no host but the crashed one was seen Down.
    assert watcher.down_between(crashed_at, watcher.times[-1]) <= {leader}
    # The write the scale asked for holds: 20 replicas in the spec.
    spec = cli.on_ok(other, "service", "inspect", "roll", "--format", "{{json .Spec.Mode}}")
    assert json.loads(spec) == {"Replicated": {"Replicas": 20}}

    # The crashed host starts again and is a reachable manager, its member back in etcd.
    lab.start(leader)
    eventually(
        lambda: cli.statuses(survivor)[leader] == "Reachable",
        timeout=60,
        what=f"{leader} reachable again",
    )
    assert member_pids(lab.host(leader))
    eventually(lambda: cli.converged(leader, "roll", 20), timeout=60, what="20 tasks, seen again")


def cut_off(cli: FailoverCli, cut: str, majority: tuple[str, str]) -> tuple[float, float]:
    """Cut ``cut`` off for ``CUT_S``: it refuses writes with Swarm's words while the
    majority takes them and its services converge; after healing, every service has exactly
    its replicas and ``cut`` takes writes again. Returns when it was cut and healed."""
    lab = cli.lab
    first, second = majority
    lab.cut(cut)
    cut_at = time.monotonic()
    try:

        def refuses(*args: str) -> bool:
            done = cli.on(cut, *args)
            assert done.returncode != 0, f"docker {' '.join(args)} on {cut}: {done.stdout}"
            return NO_LEADER in done.stderr

        refused = eventually(
            lambda: refuses("service", "scale", "-d", "steady=6"),
            timeout=15,
            what=f"{cut} refusing a scale with Swarm's words",
        )
        assert refused
        assert refuses("service", "create", "-d", "--name", "nope", IMAGE, *SERVE)
        # The majority goes on: a new leader if the cut one led, and writes through both.
        leader = eventually(
            lambda: (found := cli.leader(first)) not in (None, cut) and found,
            timeout=30,
            what="a leader among the majority",
        )
        assert leader in majority
        cli.on_ok(first, "service", "scale", "-d", "steady=5")
        name = f"during-{cut}"
        cli.service_create(second, name, "--replicas", "3", IMAGE, *SERVE)
        eventually(lambda: cli.converged(second, name, 3), timeout=60, what=f"{name} running")
        eventually(lambda: cli.converged(first, "steady", 5), timeout=60, what="steady at 5")
        # Still refused, at the end of the cut as at its start.
        time.sleep(max(0.0, CUT_S - 5 - (time.monotonic() - cut_at)))
        assert refuses("service", "scale", "-d", "steady=7")
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
    finally:
        lab.heal(cut)
    healed_at = time.monotonic()

    eventually(lambda: cli.statuses(first)[cut] == "Reachable", timeout=60, what=f"{cut} reachable")
    # It takes writes again, and every manager then sees each service with its replicas.
    eventually(
        lambda: cli.on(cut, "service", "scale", "-d", "steady=4").returncode == 0,
        timeout=30,
        what=f"{cut} taking writes",
    )
    replicas = {"steady": 4, f"during-{cut}": 3}
    for hostname in (cut, *majority):

        def every_service(on: str = hostname) -> bool:
            return all(cli.converged(on, s, c) for s, c in replicas.items())

        eventually(every_service, timeout=90, what=f"{replicas} on {hostname}")
    eventually(
        lambda: (
            sorted(cli.statuses(cut)[h] for h in MANAGERS) == ["Leader", "Reachable", "Reachable"]
        ),
        timeout=30,
        what="one leader and two reachable managers, as the healed one sees them",
    )
    return cut_at, healed_at


def test_a_manager_cut_off_refuses_writes_while_the_majority_goes_on(cli: FailoverCli) -> None:
    """Point 3: a manager that is not the leader, then the leader, each cut off from the
    other hosts for 60 s. The cut one answers writes with Swarm's no-leader error; the other
    two elect a leader if they need one and take writes; after healing, every service has
    exactly its replicas, and the leader is still the leader it was (a manager coming back
    does not depose it). While the leader is cut its lease lapses and its controllers write
    nothing more (fencing): a watcher on the manager never cut sees no slot with two running
    tasks, and no host but the cut one Down (the agents leave the silent leader for the new
    one in time)."""
    leader = cli.leader("node1")
    assert leader is not None
    follower, third = (h for h in MANAGERS if h != leader)
    steady = cli.service_create(leader, "steady", "--replicas", "4", IMAGE, *SERVE)
    eventually(lambda: cli.converged(leader, "steady", 4), timeout=60, what="steady running")

    watcher = TaskWatcher(cli.lab.host(third), steady)
    watcher.start()
    try:
        cut_at, healed_at = cut_off(cli, follower, (leader, third))
        assert watcher.down_between(cut_at, healed_at) <= {follower}
        # The follower came back without deposing the leader.
        assert cli.leader(third) == leader
        eventually(
            lambda: cli.statuses(third)[follower] == "Reachable" and cli.node_ready(third),
            timeout=60,
            what="every node ready",
        )
        cut_at, healed_at = cut_off(cli, leader, (third, follower))
        assert watcher.down_between(cut_at, healed_at) <= {leader}
    finally:
        watcher.stop()
    assert len(watcher.polls) > 100, f"too few polls: {len(watcher.polls)} {watcher.failures}"
    assert watcher.doubled_slots() == []
    assert watcher.lost(watcher.poll(), 4) == []


def test_a_leader_paused_past_its_lease_writes_nothing_when_it_wakes(cli: FailoverCli) -> None:
    """Fencing (point 3's "its controllers must not write"), the hard way: the leader's
    swarmletd is stopped (SIGSTOP: its etcd member runs on) for longer than a node's grace, as
    a long pause of the process would. The others elect a leader, every agent leaves the
    silent one for it, and only the paused host goes Down (its tasks start elsewhere). Woken,
    the old leader finds its term over and writes nothing from it: a watcher on another
    manager sees no other host Down, no slot with two running tasks and no task lost, for two
    heartbeat periods after the paused host is back."""
    lab = cli.lab
    leader = cli.leader("node1")
    assert leader is not None
    watching, other = (h for h in MANAGERS if h != leader)
    service_id = cli.service_create(watching, "paused", "--replicas", "6", IMAGE, *SERVE)
    eventually(lambda: cli.converged(watching, "paused", 6), timeout=60, what="6 tasks running")

    watcher = TaskWatcher(lab.host(watching), service_id)
    watcher.start()
    pid = int(lab.host(leader).pid_file.read_text())
    paused_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        new_leader = eventually(
            lambda: (found := cli.leader(watching)) not in (None, leader) and found,
            timeout=30,
            what="a new leader",
        )
        assert new_leader in (watching, other)
        eventually(
            lambda: cli.statuses(watching)[leader] == "Unreachable",
            what=f"{leader} unreachable",
        )
        # Past the grace of the new leader's term: the paused host is Down.
        eventually(
            lambda: watcher.down_between(paused_at, time.monotonic()) == {leader},
            timeout=60,
            what=f"{leader} down",
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        eventually(
            lambda: cli.statuses(watching)[leader] == "Reachable" and cli.node_ready(watching),
            timeout=60,
            what=f"{leader} back, a reachable manager, and every node ready",
        )
        assert cli.leader(watching) == new_leader
        eventually(lambda: cli.converged(watching, "paused", 6), timeout=60, what="6 running")
        back_at = time.monotonic()
        time.sleep(2 * 5)  # two heartbeat periods of watching what the woken one does
    finally:
        watcher.stop()
    assert watcher.down_between(paused_at, watcher.times[-1]) == {leader}
    assert watcher.down_between(back_at, watcher.times[-1]) == set()
    assert len(watcher.polls) > 100, f"too few polls: {len(watcher.polls)} {watcher.failures}"
    assert watcher.doubled_slots() == []
    assert watcher.lost(watcher.poll(), 6) == []
    assert cli.converged(leader, "paused", 6)
