"""A manager's status as the view tells it when the API answers (node ls, node inspect, a
demotion's quorum), not as it was stored: through the API and through the stock CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from swarmlet.api.backend import ClusterBackend
from swarmlet.errors import NO_LEADER, Unavailable
from swarmlet.manager.api.cluster import LocalCluster
from swarmlet.manager.api.nodes import DEMOTE_LEADER
from swarmlet.manager.quorum import DEMOTE_LOSS_OF_QUORUM
from swarmlet.manager.store import Store
from swarmlet.models import ManagerStatus, Node, NodeRole
from tests.manager.api.fakes import FakeControl, add_node, manager_control


@dataclass
class FakeView:
    """A ``ManagerView`` whose answers the test sets."""

    leader_id: str | None = None
    up: set[str] = field(default_factory=set)
    broken: bool = False

    async def leader(self) -> str | None:
        if self.broken:
            raise Unavailable("etcd at https://127.0.0.1:2379: connection refused")
        return self.leader_id

    async def reachable(self) -> set[str]:
        if self.broken:
            raise Unavailable("etcd at https://127.0.0.1:2379: connection refused")
        return set(self.up)


@dataclass
class ViewedControl(FakeControl):
    view: FakeView = field(default_factory=FakeView)

    @property
    def cluster(self) -> ClusterBackend:
        assert self.store is not None
        return LocalCluster(self.store, self.view)


@pytest.fixture
async def control(store: Store, clock) -> ViewedControl:
    made = await manager_control(store)
    return ViewedControl(
        state=made.state,
        node_id=made.node_id,
        node_addr=made.node_addr,
        store=store,
        manager_addrs=made.manager_addrs,
        clock=clock,
    )


def stored(addr: str, leader: bool = False) -> ManagerStatus:
    # As written when the node became a manager: every one stored reachable.
    return ManagerStatus(leader=leader, addr=addr)


@pytest.fixture
async def managers(store: Store, control: ViewedControl) -> list[Node]:
    """Three managers: the first (this node, stored as leader), two more; a worker."""
    first = store.get(Node, control.node_id)
    second = await add_node(
        store, "manager-2", NodeRole.MANAGER, manager_status=stored("10.0.0.2:2377")
    )
    third = await add_node(
        store, "manager-3", NodeRole.MANAGER, manager_status=stored("10.0.0.3:2377")
    )
    await add_node(store, "worker-1")
    control.view.leader_id = second.id
    control.view.up = {first.id, second.id}
    return [first, second, third]


def statuses(nodes: list[dict]) -> dict[str, dict | None]:
    return {n["Description"]["Hostname"]: n.get("ManagerStatus") for n in nodes}


async def test_node_ls_answers_each_managers_status_from_the_view(client, managers):
    response = await client.get("/v1.47/nodes")
    assert response.status == 200
    assert statuses(await response.json()) == {
        "manager-1": {"Leader": False, "Reachability": "reachable", "Addr": "10.0.0.1:2377"},
        "manager-2": {"Leader": True, "Reachability": "reachable", "Addr": "10.0.0.2:2377"},
        "manager-3": {"Leader": False, "Reachability": "unreachable", "Addr": "10.0.0.3:2377"},
        "worker-1": None,
    }


async def test_node_inspect_answers_the_views_status_and_the_store_keeps_its_own(
    client, store, control, managers
):
    control.view.leader_id = None  # between two leaders
    response = await client.get(f"/v1.47/nodes/{managers[0].id}")
    assert (await response.json())["ManagerStatus"] == {
        "Leader": False,
        "Reachability": "reachable",
        "Addr": "10.0.0.1:2377",
    }
    response = await client.get("/v1.47/nodes/manager-3")
    assert (await response.json())["ManagerStatus"]["Reachability"] == "unreachable"
    # Read time only: nothing is written.
    assert store.get(Node, managers[0].id).manager_status == stored("10.0.0.1:2377", leader=True)


async def test_a_view_that_cannot_be_read_is_swarms_lost_quorum(client, control, managers):
    control.view.broken = True
    for path in ("/v1.47/nodes", f"/v1.47/nodes/{managers[0].id}"):
        response = await client.get(path)
        assert response.status == 503
        message = (await response.json())["message"]
        assert message.startswith(NO_LEADER)
        assert "connection refused" in message


async def demote(client, node: Node):
    url = f"/v1.47/nodes/{node.id}/update?version={node.version.index}"
    return await client.post(url, json={"Role": "worker", "Availability": "active"})


async def test_demoting_a_reachable_manager_that_quorum_needs_is_refused(client, store, managers):
    # Two of three reachable: without manager-1, one reachable is not a quorum of three.
    revision = store.revision
    response = await demote(client, managers[0])
    assert response.status == 400
    assert await response.json() == {"message": DEMOTE_LOSS_OF_QUORUM}
    assert store.revision == revision


async def test_demoting_the_unreachable_manager_keeps_the_quorum(client, store, managers):
    response = await demote(client, managers[2])
    assert response.status == 200
    assert store.get(Node, managers[2].id).spec.role is NodeRole.WORKER


async def test_with_every_manager_reachable_a_follower_is_demoted(client, store, control, managers):
    control.view.up = {m.id for m in managers}
    response = await demote(client, managers[0])  # stored leader; the view's follower
    assert response.status == 200


async def test_the_views_leader_is_not_demoted_on_a_store_of_its_own(
    client, store, control, managers
):
    control.view.up = {m.id for m in managers}
    response = await demote(client, managers[1])
    assert response.status == 400
    assert await response.json() == {"message": DEMOTE_LEADER.format(node=managers[1].id)}


async def test_node_ls_prints_leader_reachable_and_unreachable(cli, served, managers):
    listed = await cli(served, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
    assert sorted(listed.split("\n")) == [
        "",
        "manager-1 Reachable",
        "manager-2 Leader",
        "manager-3 Unreachable",
        "worker-1 ",
    ]
