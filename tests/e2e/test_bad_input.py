"""Issue 2, point 10: bad input gets a 4xx with a clear message and changes nothing."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

from tests.e2e.conftest import Cli

IMAGE = "swarmlet-test/busybox:latest"
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def api(cli: Cli, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One raw Engine API call to the lab's manager: (status, decoded JSON body)."""
    connection = UnixHTTPConnection(cli.lab.docker_host.removeprefix("unix://"))
    payload = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else None


def everything(cli: Cli) -> Any:
    """What a refused request must not change: services (with versions), nodes and tasks."""
    return [api(cli, "GET", path)[1] for path in ("/services", "/nodes", "/tasks")]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"Name": "broken", "TaskTemplate": ', "invalid JSON"),
        (
            {"Name": "broken", "TaskTemplate": {"ContainerSpec": {"Image": IMAGE}}, "Mode": 5},
            "Mode",
        ),
        ({"Name": "broken", "TaskTemplate": {"ContainerSpec": {}}}, "image"),
        ({"Name": "bad name!", "TaskTemplate": {"ContainerSpec": {"Image": IMAGE}}}, "name"),
    ],
)
def test_a_malformed_spec_is_refused_with_400(cli: Cli, body: Any, words: str) -> None:
    before = everything(cli)
    status, answer = api(cli, "POST", "/v1.47/services/create", body)
    assert status == 400
    assert words.lower() in answer["message"].lower()
    assert everything(cli) == before


@pytest.mark.parametrize(
    ("constraint", "words"),
    [
        ("node.colour == blue", "node.colour"),
        ("node.labels.sgx ~= 1", "node.labels.sgx ~= 1"),
        ("node.labels.sgx", "node.labels.sgx"),
    ],
)
def test_a_bad_constraint_is_refused(cli: Cli, constraint: str, words: str) -> None:
    before = everything(cli)
    error = cli.fails(
        "service", "create", "--detach", "--name", "c", "--constraint", constraint, IMAGE
    )
    assert words in error
    assert "constraint" in error
    assert everything(cli) == before


def test_a_duplicate_name_is_refused_with_409(cli: Cli) -> None:
    cli.create("twin", IMAGE, *SERVE)
    cli.running("twin", 1)
    before = everything(cli)
    error = cli.fails("service", "create", "--detach", "--name", "twin", IMAGE)
    assert "name conflicts with an existing object" in error
    status, _ = api(
        cli,
        "POST",
        "/services/create",
        {"Name": "twin", "TaskTemplate": {"ContainerSpec": {"Image": IMAGE}}},
    )
    assert status == 409
    assert everything(cli) == before


def test_a_stale_version_is_refused(cli: Cli) -> None:
    cli.create("versioned", IMAGE, *SERVE)
    service = cli.inspect("service", "versioned")
    stale = service["Version"]["Index"]
    cli.ok("service", "update", "--detach", "--label-add", "a=1", "versioned")
    cli.running("versioned", 1)
    before = everything(cli)
    spec = {**service["Spec"], "Labels": {"b": "2"}}
    status, answer = api(cli, "POST", f"/services/{service['ID']}/update?version={stale}", spec)
    assert status == 409
    assert "update out of sequence" in answer["message"]
    assert everything(cli) == before
    assert cli.inspect("service", "versioned")["Spec"]["Labels"] == {"a": "1"}


def test_unknown_ids_are_404(cli: Cli) -> None:
    before = everything(cli)
    for path in ("/services/nope", "/nodes/nope", "/tasks/nope"):
        status, answer = api(cli, "GET", path)
        assert status == 404, path
        assert "nope" in answer["message"]
    assert "nope" in cli.fails("service", "update", "--detach", "--replicas", "2", "nope")
    assert "nope" in cli.fails("node", "update", "--availability", "drain", "nope")
    assert "nope" in cli.fails("service", "rm", "nope")
    assert everything(cli) == before
