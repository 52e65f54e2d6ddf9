"""/nodes: list (with filters), inspect, update, remove."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from swarmlet.api.common import (
    bool_query,
    control_of,
    json_response,
    read_json_object,
    version_query,
)
from swarmlet.errors import NO_LEADER, InvalidSpec, Unavailable
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.filters import (
    Filters,
    match_any,
    match_labels,
    match_prefix,
)
from swarmlet.manager.api.lookup import node_names, resolve
from swarmlet.manager.api.reads import Reads
from swarmlet.manager.leadership import ManagerView
from swarmlet.manager.quorum import demote_refusal
from swarmlet.manager.store import Tx
from swarmlet.models import Node, NodeRole, NodeSpec, NodeState, Version, api_name

ACCEPTED_FILTERS = ("id", "label", "membership", "name", "node.label", "role")
_ROLES = tuple(role.value for role in NodeRole)
_MEMBERSHIPS = ("accepted", "pending")
DEMOTE_LEADER = (
    "node {node} is the leader of the swarm and cannot be demoted: the leader holds the swarm's"
    " state, and swarmlet cannot hand leadership to another manager"
)


def is_manager(node: Node) -> bool:
    return node.manager_status is not None or node.spec.role is NodeRole.MANAGER


def membership(node: Node) -> str:
    # swarmlet admits a node when it joins; a spec may still carry Swarm's field.
    extra = node.spec.model_extra or {}
    return str(extra.get("Membership", "accepted")).lower()


def node_filter(filters: Filters) -> Filters:
    """The filters, checked as daemon/cluster's newListNodesFilters checks them."""
    filters.validate(ACCEPTED_FILTERS)
    for role in filters.get("role"):
        if role and role.lower() not in _ROLES:
            raise InvalidSpec(f"Invalid role filter: '{role}'")
    for value in filters.get("membership"):
        if value and value.lower() not in _MEMBERSHIPS:
            raise InvalidSpec(f"Invalid membership filter: '{value}'")
    return filters


def node_matches(node: Node, filters: Filters) -> bool:
    names = filters.get("name")
    return (
        (
            match_prefix(node.description.hostname, names)
            or match_prefix(node.spec.name or "", names)
        )
        and match_prefix(node.id, filters.get("id"))
        and match_labels(node.description.engine.labels, filters.get("label"))
        and match_labels(node.spec.labels, filters.get("node.label"))
        and match_any(node.spec.role.value, [r.lower() for r in filters.get("role") if r])
        and match_any(membership(node), [m.lower() for m in filters.get("membership") if m])
    )


def find_node(request: web.Request, reads: Reads) -> Node:
    """The node a path names; `self` is this node (as the CLI's `node inspect self`), unless
    a node is called so."""
    ref = request.match_info["id"]
    nodes = reads.all(Node)
    self_id = control_of(request).node_id
    if ref == "self" and self_id and not any("self" in node_names(n) for n in nodes):
        ref = self_id
    return resolve("node", ref, nodes, node_names)


# The view of the managers (leader, reachable), set on the request by the backend that has
# one (``cluster.LocalCluster``); without it a manager's status is answered as stored.
VIEW = web.RequestKey("manager_view", ManagerView)
REACHABLE = "reachable"
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Managers:
    """The view's answer at one moment: the leader (None: none) and the reachable managers."""

    leader: str | None
    reachable: frozenset[str]


async def managers_now(request: web.Request) -> Managers | None:
    """Ask the request's view, if it has one. A view that cannot be read (its manager cut
    from etcd) is Swarm's lost quorum, as a read through a manager without a leader is."""
    view = request.get(VIEW)
    if view is None:
        return None
    try:
        leader, reachable = await asyncio.gather(view.leader(), view.reachable())
    except Unavailable as exc:
        raise Unavailable(f"{NO_LEADER} ({exc.message})") from exc
    return Managers(leader, frozenset(reachable))


def with_manager_status(node: Node, managers: Managers | None) -> Node:
    """The node as the API answers it: a manager's ``Leader`` and ``Reachability`` from the
    view (``Addr`` as stored), as SwarmKit fills them from the raft's members at read time."""
    status = node.manager_status
    if managers is None or status is None:
        return node
    reachability = REACHABLE if node.id in managers.reachable else UNREACHABLE
    return node.replace(
        manager_status=status.replace(leader=node.id == managers.leader, reachability=reachability)
    )


def check_demotion(node: Node, nodes: list[Node], managers: Managers | None, shared: bool) -> None:
    """Refuse to demote the last manager, or one without which the reachable managers would
    lose their quorum (SwarmKit's words; FailedPrecondition, which moby answers with 400).
    Reachability is the view's, or the stored status without one. On a store of one
    manager's own (SQLite) the leader is refused too: it holds the swarm's store, which is
    not replicated, so leadership cannot move to another manager. Also a 400: like the last
    manager, a state of the cluster that no retry of the same request will change."""
    shown = [with_manager_status(n, managers) for n in nodes]
    members = {n.id: n.manager_status for n in shown if n.manager_status is not None}
    reachable = [i for i, status in members.items() if status.reachability == REACHABLE]
    manager_ids = [n.id for n in shown if is_manager(n)]
    refusal = demote_refusal(node.id, manager_ids, list(members), reachable)
    if refusal is not None:
        raise InvalidSpec(refusal)
    status = members.get(node.id)
    if not shared and status is not None and status.leader:
        raise InvalidSpec(DEMOTE_LEADER.format(node=node.id))


async def list_nodes(request: web.Request) -> web.Response:
    store = store_of(request)
    filters = node_filter(Filters.parse(request.query.get("filters")))
    managers = await managers_now(request)
    nodes = [
        with_manager_status(node, managers).to_api()
        for node in store.all(Node)
        if node_matches(node, filters)
    ]
    return json_response(nodes)


async def inspect_node(request: web.Request) -> web.Response:
    node = find_node(request, store_of(request))
    return json_response(with_manager_status(node, await managers_now(request)).to_api())


def parse_node_spec(body: dict[str, Any]) -> NodeSpec:
    """A node update's spec. Role and Availability have no default: moby's NodeSpecToGRPC
    refuses them empty or missing (the CLI sends the whole spec it read), rather than
    making a manager a worker."""
    spec = NodeSpec.from_api(body)
    for field in ("role", "availability"):
        if field not in spec.model_fields_set:
            raise InvalidSpec(f'invalid {api_name(field)}: ""')
    return spec


async def update_node(request: web.Request) -> web.Response:
    store = store_of(request)
    version = version_query(request, "node")
    spec = parse_node_spec(await read_json_object(request))
    # Asked before the transaction, which cannot await: a demotion checks the quorum on it.
    managers = await managers_now(request) if spec.role is NodeRole.WORKER else None

    def update(tx: Tx) -> None:
        node = find_node(request, tx)
        if node.spec.role is NodeRole.MANAGER and spec.role is NodeRole.WORKER:
            check_demotion(node, tx.all(Node), managers, store.shared)
        tx.update(node.replace(spec=spec, version=Version(index=version)))

    await store.update(update)
    return web.Response()


async def remove_node(request: web.Request) -> web.Response:
    store = store_of(request)

    def remove(tx: Tx) -> None:
        node = find_node(request, tx)
        # SwarmKit's RemoveNode: a manager that is a member (it has a manager status) must
        # be demoted first, even with force; one that is none (a manager lost before
        # `swarm init --force-new-cluster`) is removed as a worker is. A node that is still
        # Ready must be forced.
        if node.manager_status is not None:
            raise InvalidSpec(
                f"node {node.id} is a cluster manager and is a member of the raft cluster."
                " It must be demoted to worker before removal"
            )
        if node.status.state is NodeState.READY and not bool_query(request, "force"):
            raise InvalidSpec(f"node {node.id} is not down and can't be removed")
        tx.delete(node)

    await store.update(remove)
    return web.Response()
