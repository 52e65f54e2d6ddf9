"""A worker's SwarmControl, and the engine check, for the tests of the API every node serves.

Nothing here imports ``swarmlet.manager``: these tests are of the API on its own."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import pytest

from swarmlet.api.backend import NO_CLUSTER, ClusterBackend
from swarmlet.api.control import InitRequest, JoinRequest, LocalNodeState
from swarmlet.errors import Unavailable

ENGINE_SOCKET = "/var/run/docker.sock"


@dataclass
class WorkerControl:
    """An active worker of a swarm: no cluster state (``NoCluster``); the verbs are recorded
    and refused."""

    state: LocalNodeState = LocalNodeState.ACTIVE
    node_id: str = "w1"
    node_addr: str = "10.0.0.2"
    manager_addrs: list[str] = field(default_factory=lambda: ["10.0.0.1:2377"])
    engine_socket: str = ENGINE_SOCKET
    cluster: ClusterBackend = NO_CLUSTER
    calls: list[str] = field(default_factory=list)

    async def init(self, request: InitRequest) -> str:
        self.calls.append("init")
        raise Unavailable("This node is already part of a swarm.")

    async def join(self, request: JoinRequest) -> None:
        self.calls.append("join")
        raise Unavailable("This node is already part of a swarm.")

    async def leave(self, force: bool) -> None:
        self.calls.append("leave")

    async def unlock(self, key: str) -> None:
        self.calls.append("unlock")

    def unlock_key(self) -> str:
        return ""

    async def set_autolock(self, enabled: bool, rotate: bool) -> str:
        raise Unavailable("not a manager")


def require_engine() -> None:
    """Skip a real-engine test where there is no engine; under CI it must fail instead."""
    try:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(ENGINE_SOCKET)
    except OSError as exc:
        message = f"no engine at {ENGINE_SOCKET}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
