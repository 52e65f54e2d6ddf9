"""Issue 13, point 6: `docker events` carries the swarm's own events beside the engine's.

The stock CLI against the lab's manager: `docker events --since S --until U` (U past, so the
command prints what is kept and ends) shows Docker Swarm's events for what happened in
between, with their attributes (`--format '{{json .}}'`), and the engine's own.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from swarmlet.lab.lab import docker_cli
from tests.e2e.conftest import Cli, eventually

IMAGE = "swarmlet-test/busybox:latest"
IMAGE_V2 = "swarmlet-test/busybox:v2"
SERVICE = "ev-web"


def stamp() -> str:
    """Now, as `--since`/`--until` take it (unix seconds and nanoseconds)."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


def events(cli: Cli, since: str, until: str, *filters: str) -> list[dict[str, Any]]:
    args = ["events", "--since", since, "--until", until, "--format", "{{json .}}"]
    for value in filters:
        args += ["--filter", value]
    return [json.loads(line) for line in cli.ok(*args, timeout=60).splitlines() if line.strip()]


def events_through(cli: Cli, since: str, removed: str, *filters: str) -> list[dict[str, Any]]:
    """The events from ``since`` to now, once they hold the removal of ``removed``: the
    manager dates a removal when it sees it (as Docker does: the store gives no time for a
    delete), which may be just after the command that made it returned."""

    def check() -> list[dict[str, Any]] | None:
        got = events(cli, since, stamp(), *filters)
        seen = any(e["Action"] == "remove" and e["Actor"]["ID"] == removed for e in got)
        return got if seen else None

    found: list[dict[str, Any]] = eventually(check, what=f"the removal of {removed}")
    return found


def swarm_event(event: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    assert event["scope"] == "swarm"
    assert event["time"] == event["timeNano"] // 1_000_000_000
    return event["Action"], event["Actor"]["ID"], event["Actor"]["Attributes"]


def image_of(cli: Cli, service: str) -> str:
    spec = cli.inspect("service", service)["Spec"]
    return str(spec["TaskTemplate"]["ContainerSpec"]["Image"])


def test_a_services_life_in_events(cli: Cli) -> None:
    since = stamp()
    service_id = cli.create(
        SERVICE, "--replicas", "1", "--stop-grace-period", "1s", IMAGE, "sleep", "1d"
    )
    cli.running(SERVICE, 1)
    started = stamp()
    # Unfiltered: the swarm's event and the engine's container events of its task, merged in
    # time order.
    everything = events(cli, since, started)
    kinds = {
        (e["Type"], e["scope"])
        for e in everything
        if service_id
        in (e["Actor"]["ID"], e["Actor"]["Attributes"].get("com.docker.swarm.service.id"))
    }
    assert {("service", "swarm"), ("container", "local")} <= kinds
    times = [e["timeNano"] for e in everything]
    assert times == sorted(times)

    first_image = image_of(cli, SERVICE)
    cli.ok("service", "scale", "--detach", f"{SERVICE}=2")
    cli.running(SERVICE, 2)
    cli.ok("service", "update", "--detach", "--image", IMAGE_V2, SERVICE)
    eventually(
        lambda: (
            (cli.inspect("service", SERVICE).get("UpdateStatus") or {}).get("State") == "completed"
        ),
        timeout=120,
        what="the update completed",
    )
    second_image = image_of(cli, SERVICE)
    cli.ok("service", "rm", SERVICE)

    got = [swarm_event(e) for e in events_through(cli, since, service_id, "type=service")]
    mine = [(action, attributes) for action, actor, attributes in got if actor == service_id]
    assert mine[0] == ("create", {"name": SERVICE}), mine
    assert mine[-1] == ("remove", {"name": SERVICE}), mine
    updates = [attributes for action, attributes in mine[1:-1]]
    assert {action for action, _ in mine[1:-1]} == {"update"}, mine
    assert all(attributes["name"] == SERVICE for attributes in updates)

    def position(wanted: dict[str, str]) -> int:
        found = [i for i, attributes in enumerate(updates) if wanted.items() <= attributes.items()]
        assert found, f"no update event with {wanted} in {updates}"
        return found[0]

    scaled = position({"replicas.old": "1", "replicas.new": "2"})
    new_image = position({"image.old": first_image, "image.new": second_image})
    updating = position({"updatestate.new": "updating"})
    completed = position({"updatestate.old": "updating", "updatestate.new": "completed"})
    assert scaled < new_image < updating < completed
    assert "updatestate.old" not in updates[updating]


def test_a_node_drained_and_made_active_again(cli: Cli) -> None:
    node_id = cli.node_id("node2")
    since = stamp()
    cli.ok("node", "update", "--availability", "drain", "node2")
    cli.ok("node", "update", "--availability", "active", "node2")
    until = stamp()
    got = [swarm_event(e) for e in events(cli, since, until, "type=node", "node=node2")]
    assert {actor for _, actor, _ in got} == {node_id}
    changes = [attributes for _, _, attributes in got if "availability.new" in attributes]
    assert changes == [
        {"name": "node2", "availability.old": "active", "availability.new": "drain"},
        {"name": "node2", "availability.old": "drain", "availability.new": "active"},
    ]
    assert {action for action, _, _ in got} == {"update"}


def test_a_secret_a_config_and_an_overlay_network(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("events\n")
    since = stamp()
    made = {
        "secret": cli.ok("secret", "create", "ev-secret", str(data)).strip(),
        "config": cli.ok("config", "create", "ev-config", str(data)).strip(),
        "network": cli.ok("network", "create", "--driver", "overlay", "ev-net").strip(),
    }
    names = {"secret": "ev-secret", "config": "ev-config", "network": "ev-net"}
    cli.ok("secret", "rm", "ev-secret")
    cli.ok("config", "rm", "ev-config")
    cli.ok("network", "rm", "ev-net")
    for kind, object_id in made.items():
        name = names[kind]
        filters = (f"type={kind}", f"{kind}={name}", "scope=swarm")
        got = events_through(cli, since, object_id, *filters)
        assert [swarm_event(e) for e in got] == [
            ("create", object_id, {"name": name}),
            ("remove", object_id, {"name": name}),
        ], kind
    # Filters select among them: one type, one action.
    removed = events(cli, since, stamp(), "type=secret", "type=config", "event=remove")
    assert [
        (e["Type"], e["Actor"]["ID"]) for e in removed if e["Actor"]["ID"] in made.values()
    ] == [
        ("secret", made["secret"]),
        ("config", made["config"]),
    ]


def test_live_events_reach_the_stock_cli_until_it_stops(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("live\n")
    env = {**os.environ, "DOCKER_HOST": cli.lab.docker_host}
    # From a moment past: what happens before the CLI has subscribed is replayed, the rest
    # comes live.
    args = ["events", "--since", stamp(), "--format", "{{json .}}"]
    args += ["--filter", "type=secret", "--filter", "secret=ev-live"]
    with subprocess.Popen(
        [docker_cli(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as watcher:
        lines: queue.Queue[str] = queue.Queue()
        stdout = watcher.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout])
        reader.start()
        try:
            secret_id = cli.ok("secret", "create", "ev-live", str(data)).strip()
            created = json.loads(lines.get(timeout=30))
            cli.ok("secret", "rm", "ev-live")
            removed = json.loads(lines.get(timeout=30))
        finally:
            watcher.terminate()  # as Ctrl-C ends `docker events`
            watcher.wait(timeout=30)
            reader.join(timeout=30)
    assert swarm_event(created) == ("create", secret_id, {"name": "ev-live"})
    assert swarm_event(removed) == ("remove", secret_id, {"name": "ev-live"})
