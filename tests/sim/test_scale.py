"""Issue 5, Done-when 3: 200 simulated nodes and 2,000 tasks through create, scale, drain and
remove, against a real manager in this process, with exact counts at every settled step.

Not timed: each step is waited for with bounded polling, and nothing asserts on durations.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from swarmlet.manager.store import Store
from swarmlet.models import Node, NodeState, Task
from swarmlet.sim.engine import Behaviour
from swarmlet.sim.manager import LocalManager
from swarmlet.sim.nodes import Fleet, SimulatedCluster, hostname_of
from tests.sim.checks import duplicated_slots, left_behind, live, settled_problems
from tests.sim.harness import Api, background, converge, replicated

NODES = 200
DRAINED = 20
# 2,000 replicas in all, before and after scaling one service down and another up.
CREATED = {"web": 800, "api": 600, "worker": 400, "cron": 200}
SCALED = {"web": 500, "api": 900, "worker": 400, "cron": 200}


def nodes_of(store: Store) -> dict[str, Node]:
    return {node.id: node for node in store.all(Node)}


async def test_200_nodes_run_2000_tasks_through_create_scale_drain_and_remove(tmp_path: Path):
    manager = await LocalManager.found(tmp_path / "manager")
    store = manager.store
    fleet = Fleet(count=NODES, behaviour=Behaviour(start_latency=0.05, jitter=0.5), seed=5)
    cluster = SimulatedCluster([manager.addr], manager.worker_token, tmp_path / "nodes", fleet)
    engines = cluster.engines

    def settled(replicas: dict[str, int]) -> list[str]:
        return settled_problems(store.all(Task), nodes_of(store), engines, replicas)

    def no_duplicate() -> list[str]:
        return duplicated_slots(store.all(Task))

    async with (
        background(manager.run(), "manager") as managing,
        background(cluster.run(), "simulated-nodes") as simulating,
        TestClient(TestServer(manager.api())) as client,
    ):
        jobs = (managing, simulating)
        api = Api(client)

        def ready_workers() -> list[str]:
            ready = [
                n.description.hostname
                for n in store.all(Node)
                if n.status.state == NodeState.READY and n.id in cluster.engines
            ]
            return [] if len(ready) == NODES else [f"{len(ready)} of {NODES} nodes Ready"]

        await converge(ready_workers, "every node joined and Ready", jobs)
        engines = cluster.engines
        hostnames = sorted(n.description.hostname for n in store.all(Node) if n.id in engines)
        assert hostnames == [hostname_of(i) for i in range(1, NODES + 1)]

        ids = {name: await api.create_service(replicated(name, n)) for name, n in CREATED.items()}
        created = {ids[name]: count for name, count in CREATED.items()}
        await converge(lambda: settled(created), "2,000 tasks running", jobs, no_duplicate)

        await api.scale(ids["web"], SCALED["web"])
        await api.scale(ids["api"], SCALED["api"])
        scaled = {ids[name]: count for name, count in SCALED.items()}
        await converge(lambda: settled(scaled), "scaled down and up", jobs, no_duplicate)

        drained = [node.node_id for node in cluster.nodes[:DRAINED]]
        for node_id in drained:
            await api.drain(node_id)

        def drained_problems() -> list[str]:
            problems = settled(scaled)
            staying = [t.id for t in live(store.all(Task)) if t.node_id in drained]
            if staying:
                problems.append(f"{len(staying)} live tasks on drained nodes")
            busy = [n for n in drained if engines[n].running]
            if busy:
                problems.append(f"{len(busy)} drained nodes still run processes")
            return problems

        await converge(drained_problems, "20 nodes drained", jobs, no_duplicate)

        for service_id in ids.values():
            await api.remove_service(service_id)
        await converge(lambda: settled({}), "no task desired running", jobs, no_duplicate)
        await converge(lambda: left_behind(store.all(Task), engines), "everything reaped", jobs)
