"""The API every node serves (``swarmlet.api``) on its own: a node that holds no cluster state
answers the swarm's endpoints with Swarm's refusals through ``NoCluster``, and loads no module
of ``swarmlet.manager`` doing so. Each check runs in a fresh interpreter: the test process has
imported the manager already."""

from __future__ import annotations

import json
import subprocess
import sys

# A worker's control (active, in a swarm, no store, no leader), its app, and requests to it;
# prints each answer (status, message) and the manager modules loaded.
_WORKER = """
import asyncio, json, sys
from aiohttp.test_utils import TestClient, TestServer
from swarmlet.api import make_app
from swarmlet.api.backend import NO_CLUSTER
from swarmlet.api.control import LocalNodeState
from swarmlet.clock import FakeClock


class Worker:
    state = LocalNodeState.{state}
    node_id = "w1"
    node_addr = "10.0.0.2"
    manager_addrs = ["10.0.0.1:2377"]
    engine_socket = "/nonexistent/docker.sock"
    cluster = NO_CLUSTER


async def main():
    answers = {{}}
    async with TestClient(TestServer(make_app(Worker(), FakeClock()))) as client:
        for method, path, body in {requests}:
            response = await client.request(method, path, json=body)
            answers[f"{{method}} {{path}}"] = [response.status, (await response.json())["message"]]
    loaded = sorted(m for m in sys.modules if m.startswith("swarmlet.manager"))
    print(json.dumps({{"answers": answers, "manager": loaded}}))


asyncio.run(main())
"""

REQUESTS = [
    ("GET", "/v1.47/nodes", None),
    ("GET", "/v1.47/services", None),
    ("POST", "/v1.47/services/create", {"Name": "web"}),
    ("GET", "/v1.47/swarm", None),
    ("GET", "/v1.47/swarm/unlockkey", None),
    ("POST", "/v1.47/swarm/update?version=1", {}),
    ("GET", "/v1.47/tasks/x/logs", None),
    ("POST", "/v1.47/networks/create", {"Name": "backend", "Driver": "overlay"}),
    ("POST", "/v1.47/swarm/unlock", {"UnlockKey": "SWMKEY-1-x"}),
]

WORKER = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster "
    "state. Please run this command on a manager node or promote the current node to a "
    "manager."
)
LOCKED = (
    'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker '
    'swarm unlock" to unlock it.'
)


def _serve(state: str) -> dict[str, object]:
    program = _WORKER.format(state=state, requests=repr(REQUESTS))
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_a_worker_refuses_the_swarms_endpoints_without_the_manager() -> None:
    served = _serve("ACTIVE")
    assert served["manager"] == []
    answers = served["answers"]
    assert isinstance(answers, dict)
    for method, path, _ in REQUESTS:
        assert answers[f"{method} {path}"] == [503, WORKER], path


def test_a_locked_node_says_so_to_every_swarm_request() -> None:
    served = _serve("LOCKED")
    assert served["manager"] == []
    answers = served["answers"]
    assert isinstance(answers, dict)
    for method, path, _ in REQUESTS:
        if path == "/v1.47/swarm/unlock":
            continue  # the unlock itself goes to the daemon's control (not given here)
        assert answers[f"{method} {path}"] == [503, LOCKED], path
