"""A manager lost before ``docker swarm init --force-new-cluster`` is no member any more (no
manager status, ``etcd_store.drop_lost_managers``): as in SwarmKit's RemoveNode, it is
removed without a demotion once Down, while a member is still refused."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from swarmlet.manager.store import Store
from swarmlet.models import ManagerStatus, Node, NodeRole, NodeState
from tests.manager.api.fakes import add_node


async def test_a_manager_that_is_no_member_is_removed_as_a_worker(
    client: TestClient[web.Request, web.Application], store: Store
) -> None:
    lost = await add_node(store, "lost", role=NodeRole.MANAGER, state=NodeState.DOWN)
    response = await client.delete(f"/nodes/{lost.id}")
    assert response.status == 200
    assert store.find(Node, lost.id) is None


async def test_a_manager_that_is_a_member_must_be_demoted(
    client: TestClient[web.Request, web.Application], store: Store
) -> None:
    status = ManagerStatus(leader=False, reachability="unreachable", addr="10.0.0.9:2377")
    member = await add_node(
        store, "member", role=NodeRole.MANAGER, state=NodeState.DOWN, manager_status=status
    )
    response = await client.delete(f"/nodes/{member.id}?force=1")
    assert response.status == 400
    message = (await response.json())["message"]
    assert message == (
        f"node {member.id} is a cluster manager and is a member of the raft cluster."
        " It must be demoted to worker before removal"
    )
    assert store.find(Node, member.id) is not None
