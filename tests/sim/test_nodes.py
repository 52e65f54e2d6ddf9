"""Simulated nodes against a real manager in this process: joining, describing themselves,
placement by their labels, what they refuse, and keeping their identity across a restart."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from swarmlet.errors import InvalidSpec
from swarmlet.models import Node, NodeRole, NodeState, Task, TaskState
from swarmlet.pki import Credentials, JoinToken
from swarmlet.sim.manager import LocalManager
from swarmlet.sim.nodes import (
    Fleet,
    SimulatedCluster,
    address_of,
    hostname_of,
    known_node_id,
    labels_of,
    rng_of,
)
from tests.sim.harness import Api, background, converge, replicated


def test_each_node_has_its_own_name_address_zone_and_randomness():
    assert [hostname_of(i) for i in (1, 42, 1234)] == ["sim-0001", "sim-0042", "sim-1234"]
    assert [address_of(i) for i in (1, 255, 256, 300)] == [
        "127.1.0.1",
        "127.1.0.255",
        "127.1.1.0",
        "127.1.1.44",
    ]
    with pytest.raises(ValueError, match="out of range"):
        address_of(0)
    with pytest.raises(InvalidSpec, match="nodes are numbered 1 to 65535: not 65000-65999"):
        Fleet(count=1000, first=65000)
    assert labels_of(4, 0) == {}
    assert [labels_of(i, 3) for i in (1, 2, 3)] == [
        {"sim.zone": "zone-1"},
        {"sim.zone": "zone-2"},
        {"sim.zone": "zone-0"},
    ]
    assert rng_of(5, 1).random() == rng_of(5, 1).random() != rng_of(5, 2).random()
    assert isinstance(rng_of(None, 1), random.Random)


def workers(manager: LocalManager) -> dict[str, Node]:
    return {
        node.description.hostname: node
        for node in manager.store.all(Node)
        if node.spec.role is NodeRole.WORKER
    }


def ready(manager: LocalManager, count: int) -> list[str]:
    up = [n for n in workers(manager).values() if n.status.state == NodeState.READY]
    return [] if len(up) == count else [f"{len(up)} of {count} nodes Ready"]


async def test_nodes_join_run_tasks_where_their_labels_say_and_keep_their_identity(
    tmp_path: Path,
):
    manager = await LocalManager.found(tmp_path / "manager")
    token = manager.worker_token
    fleet = Fleet(count=3, zones=2, cpus=2, memory=2 * 1024**3, seed=1)
    cluster = SimulatedCluster([manager.addr], token, tmp_path / "nodes", fleet)
    async with (
        background(manager.run(), "manager") as managing,
        TestClient(TestServer(manager.api())) as client,
    ):
        api = Api(client)
        async with background(cluster.run(), "nodes") as simulating:
            await converge(lambda: ready(manager, 3), "3 nodes Ready", (managing, simulating))
            nodes = workers(manager)
            assert sorted(nodes) == ["sim-0001", "sim-0002", "sim-0003"]
            first = nodes["sim-0001"]
            assert first.status.addr == "127.1.0.1"
            assert first.description.engine.labels == {"sim.zone": "zone-1"}
            assert first.description.resources.nano_cpus == 2 * 10**9
            # Each reported what it trusts and who issued its certificate.
            cluster_object = manager.store.cluster()
            assert cluster_object is not None
            assert first.description.tls_info is not None
            assert first.description.tls_info.trust_root == cluster_object.root_ca.ca_cert

            zoned = replicated(
                "zoned",
                6,
                Placement={"Constraints": ["engine.labels.sim.zone == zone-1"]},
                # Restarted at once when their processes are gone (the nodes restart below).
                RestartPolicy={"Condition": "any", "Delay": 100_000_000},
            )
            service_id = await api.create_service(zoned)

            def zoned_running() -> list[str]:
                tasks = manager.store.tasks_of_service(service_id)
                running = [t for t in tasks if t.status.state == TaskState.RUNNING]
                return [] if len(running) == 6 else [f"{len(running)} of 6 running"]

            await converge(zoned_running, "6 tasks running", (managing, simulating))
            hosts = {t.node_id for t in manager.store.tasks_of_service(service_id)}
            assert hosts <= {nodes["sim-0001"].id, nodes["sim-0003"].id}
            assert sum(e.running for e in cluster.engines.values()) == 6

            # No tmpfs: a task that needs a secret is refused, and says why.
            secret_id = await api.create_secret("db", b"hunter2")
            reference = {
                "SecretID": secret_id,
                "SecretName": "db",
                "File": {"Name": "db", "UID": "0", "GID": "0", "Mode": 292},
            }
            secret_spec = replicated("needs-secret", 1)
            secret_spec["TaskTemplate"]["ContainerSpec"]["Secrets"] = [reference]
            secret_service = await api.create_service(secret_spec)

            def rejected() -> list[Task]:
                return [
                    t
                    for t in manager.store.tasks_of_service(secret_service)
                    if t.status.state == TaskState.REJECTED
                ]

            await converge(
                lambda: [] if rejected() else ["not rejected yet"], "a rejection", (managing,)
            )
            assert rejected()[0].status.err == "this agent cannot deliver secrets and configs"
            before = {hostname: node.id for hostname, node in workers(manager).items()}

        # Started again on the same state: the same nodes, not new ones, Ready again.
        credentials = Credentials.of(tmp_path / "nodes" / "sim-0002")
        assert known_node_id(credentials, token) == before["sim-0002"]
        other_cluster = str(JoinToken.new("0" * 50))
        assert known_node_id(credentials, other_cluster) is None
        again = SimulatedCluster([manager.addr], token, tmp_path / "nodes", fleet)
        async with background(again.run(), "nodes again") as simulating:

            def connected() -> list[str]:
                sessions = [n for n in again.nodes if n.session.connected.is_set()]
                return [] if len(sessions) == 3 else [f"{len(sessions)} of 3 sessions open"]

            await converge(connected, "3 sessions open again", (managing, simulating))
            assert {node.hostname: node.node_id for node in again.nodes} == before
            assert workers(manager).keys() == before.keys()
            await converge(zoned_running, "the tasks running again", (managing, simulating))
