"""What test_fuzz.py sends requests into: a seeded world, valid bodies, a fake engine, and a
harness that checks every answer.

The world is the same for every example (fixed IDs, a fixed root CA), so a failing example
replays exactly: an active manager whose store holds the cluster, three nodes (this manager, a
ready worker, a down one), the ingress network and an overlay network, a secret, a config, a
replicated service using them all (with a task and a previous spec) and a global service.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import currently_in_test_context, note

from swarmlet.api import make_app
from swarmlet.api.control import LocalNodeState
from swarmlet.clock import FakeClock
from swarmlet.manager.allocator import ingress_network
from swarmlet.manager.store import Op, Store
from swarmlet.manager.store.encryption import new_unlock_key
from swarmlet.models import (
    Cluster,
    Config,
    ConfigSpec,
    IPAMConfig,
    JoinTokens,
    ManagerStatus,
    Network,
    NetworkIPAM,
    Node,
    NodeDescription,
    NodeRole,
    NodeSpec,
    NodeState,
    NodeStatus,
    RootCA,
    Secret,
    SecretSpec,
    Service,
    ServiceSpec,
    StoredObject,
    Task,
    TaskSpec,
    TaskStatus,
    Version,
)
from swarmlet.pki.ca import new_root
from tests.manager.api.fakes import FakeControl, token

SLOW = 3.0  # seconds: the most one request may take (a backtracking regex blocks the loop)


def fixed_id(name: str) -> str:
    """A stable ID of Swarm's shape (25 characters of base 36), different for each name."""
    return hashlib.sha256(name.encode()).hexdigest()[:25]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# The world

UNLOCK_KEY = new_unlock_key()
ROOT = new_root(FakeClock().now())
NAMES: dict[str, list[str]] = {
    "node": ["manager-1", "worker-1", "gone-1"],
    "service": ["web", "agent"],
    "task": ["web.1." + fixed_id("task:web.1")],
    "network": ["ingress", "backend"],
    "secret": ["db-password"],
    "config": ["app-config"],
}
IDS = {kind: [fixed_id(f"{kind}:{name}") for name in names] for kind, names in NAMES.items()}
IDS["task"] = [fixed_id("task:web.1")]
INGRESS_ID, BACKEND_ID = IDS["network"]
SECRET_ID, CONFIG_ID = IDS["secret"][0], IDS["config"][0]
_KINDS: tuple[type[StoredObject], ...] = (Node, Service, Task, Network, Secret, Config)


def service_body(
    name: str = "api", image: str = "swarmlet-test/busybox:latest", port: int = 8081
) -> dict[str, Any]:
    """A ServiceSpec using every part swarmlet reads, as valid as the CLI sends it."""
    file = {"UID": "0", "GID": "0", "Mode": 292}
    return {
        "Name": name,
        "Labels": {"tier": "front"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": image,
                "Labels": {"a": "b"},
                "Command": ["sh", "-c"],
                "Args": ["sleep 1000"],
                "Env": ["A=1"],
                "Dir": "/",
                "User": "nobody",
                "StopGracePeriod": 10_000_000_000,
                "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}],
                "Init": False,
                "Secrets": [
                    {
                        "File": {"Name": "db-password", **file},
                        "SecretID": SECRET_ID,
                        "SecretName": "db-password",
                    }
                ],
                "Configs": [
                    {
                        "File": {"Name": "/app.yaml", **file},
                        "ConfigID": CONFIG_ID,
                        "ConfigName": "app-config",
                    }
                ],
            },
            "Resources": {
                "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 * 1024 * 1024},
                "Reservations": {"NanoCPUs": 100_000_000},
            },
            "RestartPolicy": {
                "Condition": "on-failure",
                "Delay": 1_000_000_000,
                "MaxAttempts": 3,
                "Window": 0,
            },
            "Placement": {
                "Constraints": ["node.role==worker", "node.labels.zone!=west"],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                "MaxReplicas": 2,
            },
            "ForceUpdate": 0,
            "Networks": [{"Target": "backend", "Aliases": ["api"]}],
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": {
            "Parallelism": 1,
            "Delay": 0,
            "FailureAction": "pause",
            "Monitor": 5_000_000_000,
            "MaxFailureRatio": 0.5,
            "Order": "start-first",
        },
        "RollbackConfig": {"Parallelism": 1, "FailureAction": "continue"},
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": port}],
        },
    }


def swarm_body() -> dict[str, Any]:
    return {
        "Name": "default",
        "Labels": {"env": "test"},
        "Orchestration": {"TaskHistoryRetentionLimit": 5},
        "Raft": {
            "SnapshotInterval": 10000,
            "KeepOldSnapshots": 0,
            "LogEntriesForSlowFollowers": 500,
            "ElectionTick": 10,
            "HeartbeatTick": 1,
        },
        "Dispatcher": {"HeartbeatPeriod": 5_000_000_000},
        "CAConfig": {"NodeCertExpiry": 90 * 24 * 3600 * 1_000_000_000, "ExternalCAs": []},
        "EncryptionConfig": {"AutoLockManagers": False},
        "TaskDefaults": {"LogDriver": {"Name": "json-file", "Options": {"max-size": "1m"}}},
    }


def _valid_bodies() -> dict[tuple[str, str], dict[str, Any]]:
    secret = {"Name": "api-key", "Labels": {"a": "b"}, "Data": b64(b"s3cret")}
    config = {"Name": "app-settings", "Labels": {"a": "b"}, "Data": b64(b"key: value\n")}
    network = {
        "Name": "front",
        "Driver": "overlay",
        "Attachable": True,
        "Labels": {"a": "b"},
        "Options": {"mtu": "1400"},
        "IPAM": {
            "Driver": "default",
            "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}],
            "Options": {},
        },
    }
    return {
        ("POST", "/swarm/init"): {
            "ListenAddr": "0.0.0.0:2377",
            "AdvertiseAddr": "192.168.1.5",
            "DataPathAddr": "",
            "DefaultAddrPool": ["10.10.0.0/16"],
            "SubnetSize": 24,
            "ForceNewCluster": False,
            "Spec": swarm_body(),
        },
        ("POST", "/swarm/join"): {
            "ListenAddr": "0.0.0.0:2377",
            "AdvertiseAddr": "192.168.1.6",
            "RemoteAddrs": ["10.0.0.1:2377"],
            "JoinToken": token("worker1"),
        },
        ("POST", "/swarm/update"): swarm_body(),
        ("POST", "/swarm/unlock"): {"UnlockKey": UNLOCK_KEY},
        ("POST", "/nodes/{id}/update"): {
            "Name": "renamed",
            "Labels": {"zone": "east"},
            "Role": "worker",
            "Availability": "drain",
        },
        ("POST", "/services/create"): service_body(),
        ("POST", "/services/{id}/update"): service_body("web", "swarmlet-test/busybox:1.36"),
        ("POST", "/networks/create"): network,
        ("POST", "/secrets/create"): secret,
        ("POST", "/secrets/{id}/update"): {"Name": "db-password", "Labels": {"rotated": "1"}},
        ("POST", "/configs/create"): config,
        ("POST", "/configs/{id}/update"): {"Name": "app-config", "Labels": {"rotated": "1"}},
    }


# A body each of these routes accepts, in the state and at the object `valid_request` gives.
VALID_BODIES = _valid_bodies()
_VALID_REFS = {"nodes": IDS["node"][1], "services": "web", "secrets": SECRET_ID}


async def seed(clock: FakeClock) -> Store:
    store = Store(clock=clock)
    cluster = Cluster(
        id=fixed_id("cluster"),
        join_tokens=JoinTokens(worker=token("worker1"), manager=token("manager1")),
        root_ca=RootCA(ca_cert=ROOT.cert_pem, ca_key=ROOT.key_pem),
    )
    backend = Network(
        id=BACKEND_ID,
        name="backend",
        ipam=NetworkIPAM(config=[IPAMConfig(subnet="10.0.1.0/24", gateway="10.0.1.1")]),
        vni=4097,
    )
    secret = Secret(id=SECRET_ID, spec=SecretSpec(name="db-password", data=b"hunter2"))
    config = Config(id=CONFIG_ID, spec=ConfigSpec(name="app-config", data=b"a: 1\n"))
    objects = [cluster, ingress_network(INGRESS_ID), backend, secret, config]
    await store.commit([Op.create(obj) for obj in objects])
    states = (NodeState.READY, NodeState.READY, NodeState.DOWN)
    nodes = []
    for node_id, hostname, state in zip(IDS["node"], NAMES["node"], states, strict=True):
        manager = hostname.startswith("manager")
        node = Node(
            id=node_id,
            spec=NodeSpec(role=NodeRole.MANAGER if manager else NodeRole.WORKER),
            description=NodeDescription(hostname=hostname),
            status=NodeStatus(state=state, addr="10.0.0.1" if manager else "10.0.0.9"),
        )
        if manager:
            node = node.replace(manager_status=ManagerStatus(leader=True, addr="10.0.0.1:2377"))
        nodes.append(node)
    await store.commit([Op.create(node) for node in nodes])
    web_spec = ServiceSpec.from_api(service_body("web", port=8080))
    (attachment,) = web_spec.task_template.networks or []
    web_spec = web_spec.replace(
        task_template=web_spec.task_template.replace(
            networks=[attachment.replace(target=BACKEND_ID)]
        )
    )
    web_service = Service(
        id=IDS["service"][0],
        spec=web_spec,
        previous_spec=ServiceSpec.from_api(service_body("web", "swarmlet-test/busybox:1.35")),
        spec_version=Version(index=1),
    )
    agent_spec = ServiceSpec.from_api({**service_body("agent"), "Mode": {"Global": {}}})
    agent = Service(
        id=IDS["service"][1],
        spec=agent_spec.replace(endpoint_spec=None),
        spec_version=Version(index=1),
    )
    await store.commit([Op.create(web_service), Op.create(agent)])
    task = Task(
        id=IDS["task"][0],
        service_id=web_service.id,
        service_name="web",
        slot=1,
        node_id=IDS["node"][1],
        spec=TaskSpec.from_api(web_service.spec.task_template.to_api()),
        spec_version=Version(index=1),
        status=TaskStatus(),
    )
    await store.commit([Op.create(task)])
    return store


def _versions() -> dict[str, int]:
    """Each seeded object's Version.Index, by ID and by name (the cluster's as "/swarm"):
    the `?version=` an update of it needs."""
    loop = asyncio.new_event_loop()  # at import: no loop runs yet, and none is set
    try:
        store = loop.run_until_complete(seed(FakeClock()))
    finally:
        loop.close()
    by_id = {obj.id: obj.version.index for kind in _KINDS for obj in store.all(kind)}
    found: dict[str, int] = {}
    for kind, ids in IDS.items():
        for object_id, name in zip(ids, NAMES[kind], strict=True):
            found[object_id] = found[name] = by_id[object_id]
    cluster = store.cluster()
    assert cluster is not None
    found["/swarm"] = cluster.version.index
    return found


VERSIONS = _versions()


def version_for(template: str, ref: str) -> str:
    return str(VERSIONS.get("/swarm" if template == "/swarm/update" else ref, 1))


def state_for(template: str) -> str:
    """The state in which a route's valid body is accepted."""
    if template in ("/swarm/init", "/swarm/join"):
        return "inactive"
    return "locked" if template == "/swarm/unlock" else "manager"


def encode(value: Any, raw: dict[str, str] | None = None) -> bytes:
    """JSON, with placeholders (quoted strings) replaced by raw text."""
    text = json.dumps(value)
    for placeholder, literal in (raw or {}).items():
        text = text.replace(placeholder, literal)
    return text.encode()


# Requests and answers


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str | None = None

    def describe(self) -> str:
        body = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"..."
        return f"{self.method} {self.path} {self.query} {self.content_type} {body!r}"


def valid_request(
    method: str, template: str, body: Any, raw: dict[str, str] | None = None
) -> Request:
    """The route with a body at the object and version its valid body is accepted at."""
    ref = _VALID_REFS.get(template.split("/")[1], CONFIG_ID) if "{id}" in template else ""
    query = (("version", version_for(template, ref)),)
    return Request(
        method, template.replace("{id}", ref), query, encode(body, raw), "application/json"
    )


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    seconds: float


def _refuse_constant(text: str) -> Any:
    raise AssertionError(f"not JSON: {text}")


def strict_json(body: bytes) -> Any:
    """JSON as Go reads it: no NaN or Infinity."""
    return json.loads(body, parse_constant=_refuse_constant)


# The fake engine


def _engine_json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data), status=status, content_type="application/json")


async def _fake_engine(request: web.Request) -> web.StreamResponse:
    """An engine speaking API 1.41 that knows one local network, `bridge`."""
    path = request.path
    if path.startswith("/v") and "/" in path[1:]:
        path = "/" + path[1:].split("/", 1)[1]
    bridge = {"Name": "bridge", "Id": "b" * 64, "Scope": "local", "Driver": "bridge"}
    if path == "/_ping":
        return web.Response(text="OK", headers={"Api-Version": "1.41"})
    if path in ("/version", "/info"):
        return _engine_json({"Version": "20.10.24", "ApiVersion": "1.41", "Components": []})
    if path == "/networks" and request.method == "GET":
        return _engine_json([bridge])
    if path == "/networks/create" and request.method == "POST":
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _engine_json({"message": "invalid JSON"}, 400)
        if not isinstance(body, dict) or not body.get("Name"):
            return _engine_json({"message": "name is required"}, 400)
        return _engine_json({"Id": "c" * 64, "Warning": ""}, 201)
    ref = path.removeprefix("/networks/")
    if ref in ("bridge", bridge["Id"]) and request.method == "GET":
        return _engine_json(bridge)
    if ref in ("bridge", bridge["Id"]) and request.method == "DELETE":
        return _engine_json({"message": "bridge is a pre-defined network"}, 403)
    return _engine_json({"message": f"{ref} not found"}, 404)


# The harness

# A log stream (``/services/{id}/logs``) is read this long at most: with follow=1 it never ends.
STREAM_READ = 1.0


async def _read(response: ClientResponse) -> bytes:
    if not response.content_type.startswith("application/vnd.docker."):
        return await response.read()
    chunks = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STREAM_READ):
            async for chunk in response.content.iter_any():
                chunks.append(chunk)
    return b"".join(chunks)


class Harness:
    """One app, served for a whole module from its own event loop; `reset` before each
    example (Hypothesis does not reset fixtures between examples), then `run` a request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, engine_socket: str) -> None:
        self.loop = loop
        self.clock = FakeClock()
        self.control = FakeControl(engine_socket=engine_socket, clock=self.clock)
        self.store = Store(clock=self.clock)
        self.state = "manager"
        self.client: TestClient[web.Request, web.Application] | None = None

    async def start(self) -> None:
        self.client = TestClient(TestServer(make_app(self.control, self.clock)))
        await self.client.start_server()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    def reset(self, state: str) -> None:
        """A fresh seeded store, and this node as `state` says: an active `manager`, a node
        `inactive` (in no swarm), a `worker`, or a `locked` manager."""
        self.state = state
        self.store = self.loop.run_until_complete(seed(self.clock))
        fresh = FakeControl(
            state=LocalNodeState.ACTIVE,
            node_id=IDS["node"][0],
            node_addr="10.0.0.1",
            store=self.store,
            manager_addrs=["10.0.0.1:2377"],
            engine_socket=self.control.engine_socket,
            clock=self.clock,
            key=UNLOCK_KEY if state == "locked" else "",
        )
        if state == "inactive":
            fresh = dataclasses.replace(fresh, state=LocalNodeState.INACTIVE, store=None)
        elif state == "worker":
            fresh = dataclasses.replace(fresh, store=None)
        elif state == "locked":
            fresh = dataclasses.replace(
                fresh, state=LocalNodeState.LOCKED, store=None, locked_store=self.store
            )
        for field in dataclasses.fields(FakeControl):
            setattr(self.control, field.name, getattr(fresh, field.name))

    def run(self, request: Request) -> Answer:
        return self.loop.run_until_complete(self.check(request))

    async def send(self, request: Request) -> Answer:
        assert self.client is not None
        url = request.path + ("?" + urlencode(request.query) if request.query else "")
        headers = {"Content-Type": request.content_type} if request.content_type else {}
        # (aiohttp warns that a large body of raw bytes may block the loop: a stream does not.)
        data = io.BytesIO(request.body) if request.body is not None else None
        started = time.monotonic()
        async with self.client.request(request.method, url, data=data, headers=headers) as response:
            body = await _read(response)
        seconds = time.monotonic() - started
        return Answer(response.status, response.headers.get("Content-Type", ""), body, seconds)

    def may_be_unavailable(self, request: Request) -> bool:
        """Docker's 503 (errNoManager, errSwarmExists) is about this node, not the input: a
        node that is not an active manager, or one asked to init or join while in a swarm."""
        return self.state != "manager" or request.path.endswith(("/swarm/init", "/swarm/join"))

    async def check(self, request: Request) -> Answer:
        """The request's answer is below 500 (but Docker's 503s), prompt, JSON with a message
        and the store untouched when a refusal; the app still answers and reads back all."""
        _note(request.describe())
        revision = self.store.revision
        answer = await self.send(request)
        _note(f"-> {answer.status} {answer.body[:500]!r}")
        if answer.status != 503 or not self.may_be_unavailable(request):
            assert answer.status < 500, f"{answer.status}: {answer.body[:500]!r}"
        assert answer.seconds < SLOW, f"took {answer.seconds:.1f} s"
        if answer.status >= 400:
            assert answer.content_type == "application/json"
            data = strict_json(answer.body)
            assert isinstance(data, dict)
            assert isinstance(data.get("message"), str)
            assert data["message"].strip()
            assert self.store.revision == revision, "a refused request changed the store"
        elif answer.content_type == "application/json":
            strict_json(answer.body)
        ping = await self.send(Request("GET", "/_ping"))
        assert (ping.status, ping.body) == (200, b"OK")
        # What was accepted reads back (the fake's init makes a store of its own: not read).
        if self.control.state is LocalNodeState.ACTIVE and self.control.store is self.store:
            for path in ("/swarm", "/nodes", "/services?status=1", "/tasks", "/networks"):
                await self._read_back(path)
            for path in ("/secrets", "/configs"):
                await self._read_back(path)
        return answer

    async def _read_back(self, path: str) -> None:
        answer = await self.send(Request("GET", path))
        assert answer.status == 200, f"GET {path} after it: {answer.status} {answer.body[:500]!r}"
        strict_json(answer.body)


def _note(text: str) -> None:
    """Shown with a failing Hypothesis example (plain tests fail with the request in view)."""
    if currently_in_test_context():
        note(text)


@contextmanager
def serve() -> Iterator[Harness]:
    """The harness, its app served and the fake engine on a unix socket, until the end."""
    loop = asyncio.new_event_loop()
    # A short folder: a unix socket's path is limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="swl-fuzz-") as folder:
        socket_path = os.path.join(folder, "engine.sock")
        engine = web.Application()
        engine.router.add_route("*", "/{tail:.*}", _fake_engine)
        runner = web.AppRunner(engine)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.UnixSite(runner, socket_path).start())
        harness = Harness(loop, socket_path)
        loop.run_until_complete(harness.start())
        try:
            yield harness
        finally:
            loop.run_until_complete(harness.close())
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
