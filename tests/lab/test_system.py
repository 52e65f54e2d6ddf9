import signal
import sys
import time
from pathlib import Path

import pytest

from swarmlet.lab.system import (
    LabError,
    kill,
    mount_points_under,
    pipe,
    process_alive,
    process_running,
    processes_mentioning,
    read_pid,
    run,
    spawn,
)

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
42 27 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:1 - ext4 /dev/vda rw
50 27 254:0 / /var/lib/swarmlet-lab/node1/docker rw - ext4 /dev/vda rw
51 50 0:50 / /var/lib/swarmlet-lab/node1/docker/overlay2/abc/merged rw - overlay overlay rw
52 27 0:4 net:[4026532] /run/swarmlet-lab/node1/engine/netns/default rw - nsfs nsfs rw
53 27 0:4 / /run/swarmlet-lab-swlt/node1/with\\040space rw - nsfs nsfs rw
"""


def test_mount_points_under_the_lab_deepest_first():
    roots = [Path("/run/swarmlet-lab"), Path("/var/lib/swarmlet-lab")]

    assert mount_points_under(roots, MOUNTINFO) == [
        Path("/var/lib/swarmlet-lab/node1/docker/overlay2/abc/merged"),
        Path("/run/swarmlet-lab/node1/engine/netns/default"),
        Path("/var/lib/swarmlet-lab/node1/docker"),
    ]


def test_mount_points_decode_octal_escapes():
    points = mount_points_under([Path("/run/swarmlet-lab-swlt")], MOUNTINFO)

    assert points == [Path("/run/swarmlet-lab-swlt/node1/with space")]


def test_run_raises_with_stderr_when_asked_to_check():
    with pytest.raises(LabError, match="boom"):
        run(["sh", "-c", "echo boom >&2; exit 3"])
    assert run(["sh", "-c", "exit 3"], check=False).returncode == 3


def test_run_of_a_missing_program_is_a_lab_error():
    with pytest.raises(LabError, match="no-such-program"):
        run(["no-such-program-swarmlet"])


@pytest.fixture
def sleeper(tmp_path):
    """A daemon spawned the way the lab spawns swarmletd; killed if the test did not."""
    command = (sys.executable, "-c", "import time; time.sleep(60)", "swarmlet-lab-test")
    pid = spawn(command, tmp_path / "sleeper.log")
    yield pid, command
    if process_alive(pid):
        kill(pid)


def test_spawned_daemon_runs_detached_and_is_recognised_by_its_command(sleeper):
    pid, command = sleeper

    assert process_running(pid, command)
    assert not process_running(pid, ("something", "else"))
    assert any(line.startswith(f"{pid} ") for line in processes_mentioning(["swarmlet-lab-test"]))


def test_kill_leaves_no_running_process(sleeper):
    pid, command = sleeper

    kill(pid, signal.SIGTERM)

    assert not process_alive(pid)
    assert not process_running(pid, command)


def test_spawn_logs_a_header_and_the_output(tmp_path):
    log = tmp_path / "logs" / "daemon.log"
    pid = spawn(["sh", "-c", "echo hello from the daemon"], log)
    while process_alive(pid):
        time.sleep(0.01)

    text = log.read_text()
    assert "swarmlet lab starts: sh -c echo hello from the daemon" in text
    assert "hello from the daemon" in text


def test_read_pid(tmp_path):
    pid_file = tmp_path / "d.pid"
    assert read_pid(pid_file) is None
    pid_file.write_text("1234\n")
    assert read_pid(pid_file) == 1234
    pid_file.write_text("garbage")
    assert read_pid(pid_file) is None


def test_pipe_passes_the_stream_and_fails_like_pipefail(tmp_path):
    out = tmp_path / "out"
    pipe(["echo", "through"], ["sh", "-c", f"cat > {out}"])
    assert out.read_text() == "through\n"

    with pytest.raises(LabError, match="producer failed"):
        pipe(["sh", "-c", "echo producer failed >&2; exit 1"], ["cat"])
    with pytest.raises(LabError, match="consumer failed"):
        pipe(["echo", "x"], ["sh", "-c", "cat >/dev/null; echo consumer failed >&2; exit 1"])
