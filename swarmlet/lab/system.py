"""The lab's thin driver of the machine: commands, background daemons, processes, mounts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from swarmlet.errors import SwarmletError


class LabError(SwarmletError):
    """The lab could not be built, driven or torn down."""


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def spawn(argv: Sequence[str], log_file: Path) -> int:
    """Start a daemon in the background, detached from us; returns its PID.

    A shell starts it as an asynchronous command and exits, so the daemon is never our child:
    it outlives the `swarmlet lab up` that started it, and killing it leaves no zombie here.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with log_file.open("a") as log:
        log.write(f"--- {stamp} swarmlet lab starts: {' '.join(argv)}\n")
    script = '"$@" </dev/null >>"$0" 2>&1 & echo $!'
    result = subprocess.run(
        ["sh", "-c", script, str(log_file), *argv],
        capture_output=True,
        text=True,
        start_new_session=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise LabError(f"could not start {argv[0]}: {result.stderr.strip()}")
    return int(result.stdout)


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Where PID 1 reaps nothing (a bare VM init), a killed daemon lingers as a zombie.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def process_running(pid: int, command: Sequence[str]) -> bool:
    """Whether `pid` is alive and runs `command`: a PID file's PID, not reused by another.

    The command is compared with the end of the process's argv, because a script's interpreter
    comes first there (`python .venv/bin/swarmletd ...`). A process in the middle of execve
    briefly shows no argv at all, so a daemon spawned a moment ago is watched with
    `process_alive` instead.
    """
    try:
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    args = [arg.decode(errors="replace") for arg in cmdline.split(b"\0")[:-1]]
    tail = args[len(args) - len(command) :]
    return len(args) >= len(command) and tail == list(command) and process_alive(pid)


def kill(pid: int, sig: int = signal.SIGKILL, timeout: float = 20) -> None:
    """Send `sig` and wait until the process is gone, escalating to SIGKILL after `timeout`.

    The caller has made sure `pid` is ours (`process_running`, or it has just spawned it).
    """
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            if sig == signal.SIGKILL:
                raise LabError(f"process {pid} survives SIGKILL")
            os.kill(pid, signal.SIGKILL)
            sig, deadline = signal.SIGKILL, time.monotonic() + timeout
        time.sleep(0.05)


def mount_points_under(roots: Iterable[Path], mountinfo: str) -> list[Path]:
    """Mount points at or below any of `roots`, deepest first (the order to unmount them)."""
    points: list[Path] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        # mountinfo escapes spaces and friends in octal (\040).
        point = Path(fields[4].encode().decode("unicode_escape"))
        if any(point == root or root in point.parents for root in roots):
            points.append(point)
    return sorted(set(points), key=lambda p: len(p.parts), reverse=True)


def unmount_all_under(roots: Iterable[Path]) -> None:
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for point in mount_points_under(list(roots), mountinfo):
        if run(["umount", str(point)], check=False).returncode != 0:
            run(["umount", "--lazy", str(point)], check=False)


def pipe(producer: Sequence[str], consumer: Sequence[str], timeout: float = 300) -> None:
    """`producer | consumer`, failing if either fails (as `set -o pipefail` would)."""
    with subprocess.Popen(list(producer), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as first:
        try:
            second = subprocess.run(
                list(consumer),
                stdin=first.stdout,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            if first.stdout:
                first.stdout.close()
        first_err = first.stderr.read().decode(errors="replace") if first.stderr else ""
        first.wait(timeout)
    if first.returncode != 0:
        raise LabError(f"{' '.join(producer)} failed ({first.returncode}): {first_err.strip()}")
    if second.returncode != 0:
        raise LabError(f"{' '.join(consumer)} failed ({second.returncode}): {second.stderr}")


def processes_mentioning(needles: Sequence[str]) -> list[str]:
    """Live processes whose argv mentions any of `needles`, each as "PID ARGV"."""
    found: list[str] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # Zombies and kernel threads have an empty cmdline, and nothing to clean up.
        argv = " ".join(arg.decode(errors="replace") for arg in cmdline.split(b"\0") if arg)
        if argv and any(needle in argv for needle in needles):
            found.append(f"{proc.name} {argv}")
    return found
