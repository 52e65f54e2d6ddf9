"""Issue 13, point 1 (without the templates) and the negative limits of point 7: a service
using every ContainerSpec and Resources option, made with the stock CLI (and, for what the CLI
cannot send, the API), gives its task a container that `docker inspect` on the engine shows
set as Swarm's executor sets it, one row per option; a bad value is refused with a 400 and
leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmlet.lab.lab import docker_cli
from tests.e2e.conftest import Cli, eventually
from tests.e2e.test_bad_input import api, everything

IMAGE = "swarmlet-test/busybox:latest"
VOLUME = "swarmlet-test-container-spec"
MIB = 1024 * 1024


def engine(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI against the lab's shared engine itself (its volumes are no swarm object)."""
    return subprocess.run(
        [docker_cli(), "-H", cli.lab.config.shared_engine, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def volume(cli: Cli) -> Iterator[str]:
    engine(cli, "volume", "rm", "-f", VOLUME)
    yield VOLUME
    cli.cleanup()  # the task's container goes first: a volume in use is not removed
    cli.services.clear()
    engine(cli, "volume", "rm", "-f", VOLUME)


def running_container(cli: Cli, service: str, not_task: str = "") -> tuple[str, dict[str, Any]]:
    """The running task of the service (other than ``not_task``) and its container's inspect."""

    def found() -> tuple[str, dict[str, Any]]:
        tasks = cli.inspect_tasks(service)
        for task in tasks:
            if task["ID"] == not_task or task["Status"]["State"] != "running":
                continue
            container = task["Status"]["ContainerStatus"]["ContainerID"]
            return task["ID"], json.loads(cli.ok("inspect", container))[0]
        raise AssertionError([(t["Status"]["State"], t["Status"].get("Err")) for t in tasks])

    return eventually(found, timeout=90, what=f"a running task of {service}")  # type: ignore[no-any-return]


def test_every_option_reaches_the_container(cli: Cli, volume: str, tmp_path: Path) -> None:
    bound = tmp_path / "bound"
    bound.mkdir()
    cli.create(
        "every",
        "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN",
        "--sysctl", "net.ipv4.ip_forward=1",
        "--ulimit", "nofile=1024:2048",
        "--init", "--read-only",
        "--limit-pids", "64", "--limit-cpu", "0.5", "--limit-memory", "64m",
        "--reserve-memory", "32m", "--reserve-cpu", "0.1",
        "--stop-signal", "SIGUSR1", "--stop-grace-period", "3s",
        "--dns", "10.9.9.9", "--dns-option", "ndots:2", "--dns-search", "example.test",
        "--host", "db.test:10.1.2.3",
        # The image has no passwd entry for nobody: its number.
        "--group", "1234", "--user", "65534", "--workdir", "/tmp",
        "--hostname", "every-host",
        "--env", "A=1",
        "--label", "svc=1", "--container-label", "tier=front",
        "--tty",
        "--entrypoint", "sh",
        "--mount", f"type=bind,source={bound},target=/b,readonly,bind-propagation=private",
        "--mount", f"type=volume,source={volume},target=/v,volume-driver=local,"
                   "volume-label=k=v,volume-nocopy",
        "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "--log-driver", "json-file", "--log-opt", "max-size=1m",
        "--isolation", "default",
        IMAGE, "-c", "sleep 1d",
    )  # fmt: skip
    first, _ = running_container(cli, "every")

    # What the CLI has no flag for, through the API: the same service, updated.
    status, service = api(cli, "GET", "/v1.47/services/every")
    assert status == 200, service
    spec = service["Spec"]
    spec["TaskTemplate"]["ContainerSpec"].update({"OomScoreAdj": 500, "OpenStdin": True})
    spec["TaskTemplate"]["Resources"].update({"SwapBytes": 16 * MIB, "MemorySwappiness": 10})
    version = service["Version"]["Index"]
    status, answer = api(cli, "POST", f"/v1.47/services/every/update?version={version}", spec)
    assert status == 200, answer
    assert answer.get("Warnings") in (None, [])
    _, container = running_container(cli, "every", not_task=first)

    config, host = container["Config"], container["HostConfig"]
    rows: list[tuple[str, Any, Any]] = [
        ("--cap-add", host["CapAdd"], ["CAP_NET_ADMIN"]),
        ("--cap-drop", host["CapDrop"], ["CAP_CHOWN"]),
        ("--sysctl", host["Sysctls"], {"net.ipv4.ip_forward": "1"}),
        ("--ulimit", host["Ulimits"], [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]),
        ("--init", host["Init"], True),
        ("--read-only", host["ReadonlyRootfs"], True),
        ("--limit-pids", host["PidsLimit"], 64),
        ("--limit-cpu", host["NanoCpus"], 500_000_000),
        ("--limit-memory", host["Memory"], 64 * MIB),
        # Reservations are the scheduler's: Swarm's executor gives the container none.
        ("--reserve-memory", host["MemoryReservation"], 0),
        ("--reserve-cpu", (host["CpuShares"], host["CpuQuota"]), (0, 0)),
        ("--stop-signal", config["StopSignal"], "SIGUSR1"),
        ("--stop-grace-period", config["StopTimeout"], 3),
        ("--dns", host["Dns"], ["10.9.9.9"]),
        ("--dns-option", host["DnsOptions"], ["ndots:2"]),
        ("--dns-search", host["DnsSearch"], ["example.test"]),
        ("--host", host["ExtraHosts"], ["db.test:10.1.2.3"]),
        ("--group", host["GroupAdd"], ["1234"]),
        ("--user", config["User"], "65534"),
        ("--workdir", config["WorkingDir"], "/tmp"),
        ("--hostname", config["Hostname"], "every-host"),
        ("--env", [e for e in config["Env"] if e.startswith("A=")], ["A=1"]),
        ("--label", "svc" in config["Labels"], False),  # the service's, not the container's
        ("--container-label", config["Labels"].get("tier"), "front"),
        ("--tty", config["Tty"], True),
        ("--entrypoint", (config["Entrypoint"], config["Cmd"]), (["sh"], ["-c", "sleep 1d"])),
        ("--log-driver", host["LogConfig"]["Type"], "json-file"),
        ("--log-opt", host["LogConfig"]["Config"], {"max-size": "1m"}),
        ("--isolation", host["Isolation"], "default"),
        ("OomScoreAdj", host["OomScoreAdj"], 500),
        ("OpenStdin", config["OpenStdin"], True),
        ("SwapBytes", host["MemorySwap"], 64 * MIB + 16 * MIB),
        ("MemorySwappiness", host["MemorySwappiness"], 10),
    ]
    mounts = {mount["Target"]: mount for mount in host["Mounts"]}
    rows += [
        ("bind", (mounts["/b"]["Type"], mounts["/b"]["Source"]), ("bind", str(bound))),
        ("bind readonly", mounts["/b"]["ReadOnly"], True),
        ("bind-propagation", mounts["/b"]["BindOptions"], {"Propagation": "private"}),
        ("volume", (mounts["/v"]["Type"], mounts["/v"]["Source"]), ("volume", volume)),
        ("volume-nocopy", mounts["/v"]["VolumeOptions"]["NoCopy"], True),
        ("volume-label", mounts["/v"]["VolumeOptions"]["Labels"], {"k": "v"}),
        ("volume-driver", mounts["/v"]["VolumeOptions"]["DriverConfig"]["Name"], "local"),
        ("tmpfs-size", mounts["/t"]["TmpfsOptions"]["SizeBytes"], MIB),
        ("tmpfs-mode", mounts["/t"]["TmpfsOptions"]["Mode"], 0o1770),
    ]
    # The engine made the volume as the mount asked.
    made = json.loads(engine(cli, "volume", "inspect", volume).stdout)[0]
    rows += [("volume made", (made["Driver"], made["Labels"]), ("local", {"k": "v"}))]
    wrong = [(option, got, wanted) for option, got, wanted in rows if got != wanted]
    assert wrong == []


def test_a_negative_limit_is_refused_and_leaves_nothing(cli: Cli) -> None:
    before = everything(cli)
    refused = cli.fails(
        "service", "create", "--name", "negative", "--limit-cpu", "-1", IMAGE, "sleep", "1d"
    )
    assert "invalid cpu value -1: Must be at least 0.001" in refused
    assert everything(cli) == before


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ({"Resources": {"Limits": {"Pids": -1}}}, "invalid pids value -1"),
        ({"Resources": {"Limits": {"MemoryBytes": -1}}}, "invalid memory value -1"),
        ({"Resources": {"MemorySwappiness": 101}}, "valid memory swappiness range is 0-100"),
        ({"Resources": {"Limits": {"MemoryBytes": 64 * MIB}, "SwapBytes": -2}}, "swap value -2"),
        ({"ContainerSpec": {"Image": IMAGE, "OomScoreAdj": 2000}}, "range for oom score adj"),
        (
            {"ContainerSpec": {"Image": IMAGE, "Ulimits": [{"Name": "x", "Soft": 1, "Hard": 1}]}},
            "invalid ulimit type: x",
        ),
    ],
)
def test_a_bad_value_gets_a_400_and_leaves_nothing(
    cli: Cli, field: dict[str, Any], words: str
) -> None:
    before = everything(cli)
    template = {"ContainerSpec": {"Image": IMAGE}, **field}
    status, answer = api(
        cli, "POST", "/v1.47/services/create", {"Name": "bad", "TaskTemplate": template}
    )
    assert (status, words in answer["message"]) == (400, True), answer
    assert everything(cli) == before
