"""Every object in Docker Swarm's shape: the same commands as ``scripts/record-swarm-fixtures.sh``
ran against Docker Swarm 20.10, run with the stock CLI against the lab, give JSON of the same
key structure (keys and nesting, not values) as the recorded ``tests/fixtures/swarm-20.10``.

Where swarmlet cannot give Swarm's shape yet, the key is a named exception below, with why.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli, eventually

FIXTURES = Path(__file__).parent.parent / "fixtures" / "swarm-20.10"
IMAGE = "swarmlet-test/busybox:latest"
# Objects whose keys are names or IDs (a map's): their values' shapes are compared, merged.
MAPS = frozenset({"Labels", "Options", "Containers", "Sysctls"})

# (fixture, key path) -> why swarmlet's JSON differs there. A path is the keys from the top,
# `[]` for a list's items, `*` for a map's values.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("network-ingress", "[].EnableIPv4"): (
        "swarmlet serves API 1.47, whose networks have EnableIPv4; 20.10's (1.41) have none"
    ),
    ("network-overlay", "[].EnableIPv4"): "as network-ingress",
}


def paths(value: Any, prefix: str = "") -> set[str]:
    """The key paths of a JSON value: its structure without the values."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            if key in MAPS and isinstance(item, dict):
                for inner in item.values():
                    found |= paths(inner, f"{path}.*")
            else:
                found |= paths(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= paths(item, f"{prefix}[]")
    return found


def differences(name: str, ours: Any, used: set[tuple[str, str]]) -> list[str]:
    """How the key structure of ``ours`` differs from the fixture's, but for the named
    exceptions (each one met is added to ``used``)."""
    swarm = json.loads((FIXTURES / f"{name}.json").read_text())
    theirs, mine = paths(swarm), paths(ours)
    found = []
    for word, keys in (("missing", theirs - mine), ("extra", mine - theirs)):
        for path in sorted(keys):
            if (name, path) in EXCEPTIONS:
                used.add((name, path))
            else:
                found.append(f"{word} {path}")
    return found


@pytest.fixture
def shapes(cli: Cli) -> Iterator[Cli]:
    """The objects the fixtures were recorded from: an overlay network, a replicated service
    publishing a port on it, a global one."""
    cli.ok("network", "create", "-d", "overlay", "shapes-net")
    try:
        cli.create(
            "shapes-web",
            "--replicas", "3",
            "--network", "shapes-net",
            "-p", "18080:80",
            IMAGE, "sleep", "3600",
        )  # fmt: skip
        cli.create("shapes-global", "--mode", "global", IMAGE, "sleep", "3600")
        cli.running("shapes-web", 3)
        cli.running("shapes-global", 3)
        yield cli
    finally:
        cli.cleanup()
        cli.services.clear()
        eventually(
            lambda: cli("network", "rm", "shapes-net").returncode == 0,
            what="shapes-net removed",
        )


def raw_api(cli: Cli, path: str) -> Any:
    socket = cli.lab.host("node1").api_socket
    done = subprocess.run(
        ["curl", "-sf", "--unix-socket", str(socket), f"http://docker/v1.47{path}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(done.stdout)


def test_objects_have_swarms_key_structure(shapes: Cli) -> None:
    cli = shapes
    # A task of the replicated service on this node: `network inspect` lists it as Swarm's does.
    node1 = cli.node_id("node1")
    web_tasks = cli.inspect_tasks("shapes-web", "desired-state=running", f"node={node1}")
    assert web_tasks, "no task of shapes-web on node1"
    commands = {
        "service-replicated": ["service", "inspect", "shapes-web"],
        "service-global": ["service", "inspect", "shapes-global"],
        "node": ["node", "inspect", "self"],
        "task": ["inspect", "--type", "task", web_tasks[0]["ID"]],
        "network-ingress": ["network", "inspect", "ingress"],
        "network-overlay": ["network", "inspect", "shapes-net"],
    }
    used: set[tuple[str, str]] = set()
    found = {
        name: differences(name, json.loads(cli.ok(*args)), used) for name, args in commands.items()
    }
    found["swarm"] = differences("swarm", raw_api(cli, "/swarm"), used)
    found["service-replicated-raw"] = differences(
        "service-replicated-raw", raw_api(cli, "/services/shapes-web"), used
    )
    assert {name: diff for name, diff in found.items() if diff} == {}
    # An exception whose difference is gone is taken out of the list.
    assert set(EXCEPTIONS) - used == set()
