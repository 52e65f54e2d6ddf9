"""Issue 13: templates, with the stock CLI on the 3-host lab.

A service's hostname, env and mount source templates are expanded per task on its node; a
templated config and secret (``--template-driver golang``) read inside two tasks show each
task's own values; a malformed template is refused at create with Swarm's message and nothing
is made; a templated config that does not expand rejects the task with moby's words.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from swarmlet.lab.lab import docker_cli
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
SLEEP = ["sleep", "3600"]
# busybox's PID 1 ignores SIGTERM: without this each removal waits 10 s.
QUICK_STOP = ["--stop-grace-period", "1s"]


def running_tasks(cli: Cli, service: str) -> list[dict[str, Any]]:
    return [
        task
        for task in cli.inspect_tasks(service, "desired-state=running")
        if task["Status"]["State"] == "running"
    ]


def hostname_of(cli: Cli, node_id: str) -> str:
    return cli.ok("node", "inspect", node_id, "--format", "{{.Description.Hostname}}").strip()


def container_of(task: dict[str, Any]) -> str:
    return str(task["Status"]["ContainerStatus"]["ContainerID"])


def create_from_stdin(cli: Cli, kind: str, name: str, data: bytes, *flags: str) -> None:
    done = subprocess.run(
        [docker_cli(), kind, "create", *flags, name, "-"],
        input=data,
        env={**os.environ, "DOCKER_HOST": cli.lab.docker_host},
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def objects(cli: Cli) -> Iterator[list[tuple[str, str]]]:
    """Secrets, configs and volumes a test made (kind, name): removed after its services."""
    made: list[tuple[str, str]] = []
    yield made
    cli.cleanup()
    for kind, name in made:
        cli(kind, "rm", name)


def test_hostname_env_and_mount_source_are_expanded_per_task(
    cli: Cli, objects: list[tuple[str, str]]
) -> None:
    objects += [("volume", f"tpl-data-{slot}") for slot in (1, 2, 3)]
    service_id = cli.create(
        "tpl",
        "--replicas", "3",
        "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
        "--env", "WHERE={{.Node.Hostname}}",
        "--env", "WHO={{.Task.Name}} {{.Service.ID}} {{.Node.ID}}",
        "--env", "OS={{.Node.Platform.OS}}",
        "--mount", "type=volume,source=tpl-data-{{.Task.Slot}},target=/data",
        *QUICK_STOP, IMAGE, *SLEEP,
    )  # fmt: skip
    cli.running("tpl", 3)
    tasks = running_tasks(cli, "tpl")
    assert sorted(task["Slot"] for task in tasks) == [1, 2, 3]
    for task in tasks:
        slot, node_id, container = task["Slot"], task["NodeID"], container_of(task)
        where = hostname_of(cli, node_id)
        # Run in the container: what the task's process sees.
        assert cli.ok("exec", container, "hostname").strip() == f"tpl-{slot}"
        shown = cli.ok("exec", container, "sh", "-c", 'echo "$WHERE|$WHO|$OS"').strip()
        assert shown == f"{where}|tpl.{slot}.{task['ID']} {service_id} {node_id}|linux"
        # And on the engine: the task's own volume.
        inspected = cli.inspect("container", container)
        [mount] = [m for m in inspected["Mounts"] if m["Destination"] == "/data"]
        assert (mount["Type"], mount["Name"]) == ("volume", f"tpl-data-{slot}")
    # The service keeps the templates as given.
    spec = cli.inspect("service", "tpl")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["Hostname"] == "{{.Service.Name}}-{{.Task.Slot}}"
    assert "WHERE={{.Node.Hostname}}" in spec["Env"]


def test_a_templated_config_and_secret_show_each_tasks_own_values(
    cli: Cli, objects: list[tuple[str, str]]
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    create_from_stdin(cli, "secret", "tpl_pw", password.encode())
    objects.append(("secret", "tpl_pw"))
    create_from_stdin(
        cli,
        "secret",
        "tpl_secret",
        b"task={{.Task.Name}} slot={{.Task.Slot}}",
        "--template-driver",
        "golang",
    )
    objects.append(("secret", "tpl_secret"))
    create_from_stdin(
        cli,
        "config",
        "tpl_config",
        b'svc={{.Service.Name}} slot={{.Task.Slot}} node={{.Node.ID}} where={{env "WHERE"}}'
        b' host=[{{.Node.Hostname}}] pw={{secret "tpl_pw"}}',
        "--template-driver",
        "golang",
    )
    objects.append(("config", "tpl_config"))
    assert cli.inspect("config", "tpl_config")["Spec"]["Templating"]["Name"] == "golang"

    cli.create(
        "tplfiles",
        "--replicas", "2",
        "--env", "WHERE={{.Node.Hostname}}",
        "--secret", "tpl_pw", "--secret", "tpl_secret",
        "--config", "source=tpl_config,target=/etc/app.conf",
        *QUICK_STOP, IMAGE, *SLEEP,
    )  # fmt: skip
    cli.running("tplfiles", 2)
    tasks = running_tasks(cli, "tplfiles")
    seen = set()
    for task in tasks:
        slot, node_id, container = task["Slot"], task["NodeID"], container_of(task)
        config = cli.ok("exec", container, "cat", "/etc/app.conf")
        where = hostname_of(cli, node_id)
        # No hostname in a payload (moby gives config templates no node); env has it.
        assert config == (
            f"svc=tplfiles slot={slot} node={node_id} where={where} host=[] pw={password}"
        )
        secret = cli.ok("exec", container, "cat", "/run/secrets/tpl_secret")
        assert secret == f"task=tplfiles.{slot}.{task['ID']} slot={slot}"
        assert cli.ok("exec", container, "cat", "/run/secrets/tpl_pw") == password
        seen.add((config, secret))
    assert len(seen) == 2  # each task its own


def test_a_malformed_template_is_refused_at_create_and_nothing_is_made(cli: Cli) -> None:
    before = cli.ok("service", "ls", "-q")
    err = cli.fails(
        "service", "create", "--name", "tplbad", "--detach=true",
        "--hostname", "{{.Service.Name", *QUICK_STOP, IMAGE, *SLEEP,
    )  # fmt: skip
    assert err == (
        "Error response from daemon: expanding hostname failed: template: expansion:1:"
        " unclosed action\n"
    )
    err = cli.fails(
        "service", "create", "--name", "tplbad", "--detach=true",
        "--env", "WHERE={{.Node.Hostnam}}", *QUICK_STOP, IMAGE, *SLEEP,
    )  # fmt: skip
    assert err == (
        'Error response from daemon: expanding env failed: expanding env "WHERE={{.Node.Hostnam}}":'
        ' template: expansion:1:7: executing "expansion" at <.Node.Hostnam>: can\'t evaluate'
        " field Hostnam in type struct { ID string; Hostname string; Platform template.Platform }\n"
    )
    assert cli.ok("service", "ls", "-q") == before
    assert "tplbad" not in cli.ok("service", "ls", "--format", "{{.Name}}")


def test_a_templated_config_that_does_not_expand_rejects_its_task(
    cli: Cli, objects: list[tuple[str, str]]
) -> None:
    create_from_stdin(cli, "config", "tpl_broken", b"{{.Nope}}", "--template-driver", "golang")
    objects.append(("config", "tpl_broken"))
    config_id = cli.inspect("config", "tpl_broken")["ID"]
    cli.create("tplreject", "--config", "tpl_broken", *QUICK_STOP, IMAGE, *SLEEP)

    def rejected() -> list[dict[str, Any]]:
        tasks = cli.inspect_tasks("tplreject")
        return [task for task in tasks if task["Status"]["State"] == "rejected"]

    status = eventually(rejected, what="a rejected task")[0]["Status"]
    assert status["Message"] == "preparing"
    assert status["Err"] == (
        f"unable to get config from config store: failed to expand templated config {config_id}:"
        ' template: expansion:1:2: executing "expansion" at <.Nope>: can\'t evaluate field Nope'
        " in type *template.PayloadContext"
    )
