"""Promoting and demoting through the API: what is refused, in Swarm's words where it has them."""

from __future__ import annotations

from swarmlet.manager.api.nodes import DEMOTE_LEADER
from swarmlet.models import ManagerStatus, Node, NodeRole
from tests.manager.api.fakes import add_node


async def update_role(client, node: Node, role: str):
    url = f"/v1.47/nodes/{node.id}/update?version={node.version.index}"
    return await client.post(url, json={"Role": role, "Availability": "active"})


async def test_a_worker_is_promoted(client, store):
    worker = await add_node(store, "worker-1")
    response = await update_role(client, worker, "manager")
    assert response.status == 200
    assert store.get(Node, worker.id).spec.role is NodeRole.MANAGER


async def test_the_leader_is_not_demoted_even_with_another_manager(client, store, control):
    reachable = ManagerStatus(leader=False, addr="10.0.0.2:2377")
    await add_node(store, "manager-2", role=NodeRole.MANAGER, manager_status=reachable)
    leader = store.get(Node, control.node_id)
    revision = store.revision
    response = await update_role(client, leader, "worker")
    assert response.status == 400
    assert await response.json() == {"message": DEMOTE_LEADER.format(node=leader.id)}
    assert store.revision == revision


async def test_the_last_manager_is_refused_before_the_leader(client, store, control):
    leader = store.get(Node, control.node_id)
    response = await update_role(client, leader, "worker")
    assert response.status == 400
    assert await response.json() == {
        "message": "attempting to demote the last manager of the swarm"
    }


async def test_a_follower_is_demoted_and_may_demote_itself(client, store, control):
    reachable = ManagerStatus(leader=False, addr="10.0.0.2:2377")
    follower = await add_node(store, "manager-2", role=NodeRole.MANAGER, manager_status=reachable)
    response = await update_role(client, follower, "worker")
    assert response.status == 200
    demoted = store.get(Node, follower.id)
    assert demoted.spec.role is NodeRole.WORKER
    # Its manager status goes with its manager certificate (the CA's renewal), not here.
    assert demoted.manager_status == reachable
