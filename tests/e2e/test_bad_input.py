"""Issue 2, point 10: bad input gets a 4xx with a clear message and changes nothing."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
from typing import Any

import aiohttp
import pytest

from swarmlet.pki import Credentials
from swarmlet.pki.tls import MANAGER_NAME, client_context
from swarmlet.protocol import JOIN_PATH, CertificateRequest
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


def secrets_and_configs(cli: Cli) -> Any:
    return [api(cli, "GET", path)[1] for path in ("/secrets", "/configs", "/swarm")]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        # Issue 4, point 7: an oversized secret, an unknown secret, malformed PEM.
        (
            "POST",
            "/v1.47/secrets/create",
            {"Name": "big", "Data": base64.b64encode(b"x" * 600 * 1024).decode()},
            400,
            "secret data must be larger than 0 and less than 512000 bytes",
        ),
        ("GET", "/v1.47/secrets/no-such-secret", None, 404, "secret no-such-secret not found"),
        ("DELETE", "/v1.47/secrets/no-such-secret", None, 404, "not found"),
        (
            "POST",
            "/v1.47/services/create",
            {
                "Name": "uses-nothing",
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Image": IMAGE,
                        "Secrets": [
                            {
                                "SecretID": "nosuchsecretid00000000000",
                                "SecretName": "nope",
                                "File": {"Name": "nope", "UID": "0", "GID": "0", "Mode": 292},
                            }
                        ],
                    }
                },
            },
            400,
            "secret not found",
        ),
        (
            "POST",
            "/v1.47/configs/create",
            {"Name": "bad name!", "Data": base64.b64encode(b"x").decode()},
            400,
            "invalid name",
        ),
        ("POST", "/v1.47/swarm/unlock", {"UnlockKey": "not-a-key"}, 409, "not locked"),
    ],
)
def test_bad_security_input_is_refused(
    cli: Cli, method: str, path: str, body: Any, status: int, words: str
) -> None:
    before = secrets_and_configs(cli), everything(cli)
    answer_status, answer = api(cli, method, path, body)
    assert answer_status == status, answer
    assert words in answer["message"]
    assert (secrets_and_configs(cli), everything(cli)) == before


def test_malformed_pem_is_refused(cli: Cli) -> None:
    """A junk CA certificate in the swarm's spec, and a junk CSR with a valid join token on the
    manager's port: both a clear 400, nothing changed."""
    before = secrets_and_configs(cli), everything(cli)
    swarm = api(cli, "GET", "/v1.47/swarm")[1]
    spec = swarm["Spec"]
    spec["CAConfig"]["SigningCACert"] = (
        "-----BEGIN CERTIFICATE-----\njunk\n-----END CERTIFICATE-----"
    )
    spec["CAConfig"]["ForceRotate"] = spec["CAConfig"].get("ForceRotate", 0) + 1
    status, answer = api(
        cli, "POST", f"/v1.47/swarm/update?version={swarm['Version']['Index']}", spec
    )
    assert status == 400
    assert "--ca-cert" in answer["message"]

    manager = cli.lab.host("node1")
    root = Credentials.of(manager.state_dir).trust()
    token = swarm["JoinTokens"]["Worker"]
    body = CertificateRequest(csr="-----BEGIN CERTIFICATE REQUEST-----\njunk\n", token=token)

    async def post() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"https://{manager.listen_addr}{JOIN_PATH}",
                data=body.model_dump_json(),
                ssl=client_context(root),
                server_hostname=MANAGER_NAME,
            ) as response,
        ):
            answer = (response.status, await response.json())
        await asyncio.sleep(0.25)  # let the TLS connection close before the loop does
        return answer

    status, answer = asyncio.run(post())
    assert status == 400
    assert answer["message"] == "invalid certificate signing request: not a PEM CSR"
    assert (secrets_and_configs(cli), everything(cli)) == before
