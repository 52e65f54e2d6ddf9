"""/networks: the cluster's overlay networks from the store, the engine's local ones beside them.

- ``POST /networks/create`` with the ``overlay`` driver makes a swarm network, allocated here
  (subnet, gateway, VNI) so that `docker network inspect` shows them at once and a bad subnet
  is refused at once; any other driver is the engine's (a local network), passed through.
- ``GET /networks`` lists the engine's networks and ours, with the CLI's filters.
- ``GET /networks/{id}`` and ``DELETE /networks/{id}``: ours by ID, name or unique ID prefix;
  anything else goes to the engine. A network a service uses cannot be removed.

These handlers run where the store is (``cluster.LocalCluster``). On a node that holds no
cluster state, everything but an overlay network's creation goes to the engine
(``swarmlet.api.networks``). A follower manager asks the leader for the swarm's part
(``follower.py``); forwarded to the leader, a request is answered from the store alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from swarmlet.api.common import control_of, forwarded, json_response, read_json_object
from swarmlet.api.containers import local_containers
from swarmlet.api.networks import (
    SWARM_SCOPE,
    NetworkCreateRequest,
    create_local,
    engine_networks,
)
from swarmlet.api.proxy import ENGINE
from swarmlet.clock import rfc3339
from swarmlet.errors import InvalidSpec, NameConflict, NotFound
from swarmlet.ids import new_id
from swarmlet.manager.allocator import allocate_network, network_configs, publishes_ingress
from swarmlet.manager.allocator.ports import spec_ports
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.filters import Filters, match_labels
from swarmlet.manager.api.lookup import resolve, task_name
from swarmlet.manager.api.reads import Reads
from swarmlet.manager.store import Tx
from swarmlet.models import (
    DEFAULT_POOLS,
    DEFAULT_SUBNET_SIZE,
    OVERLAY,
    VXLAN_OPTION,
    Network,
    NetworkIPAM,
    Node,
    Service,
    Task,
    TaskState,
)

ACCEPTED_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
# The engine's own networks (daemon/network's IsPreDefinedNetwork).
PREDEFINED = ("bridge", "host", "none", "default")
INTERNAL_LABEL = "com.docker.swarm.internal"
_TRUE = ("true", "1")
_FALSE = ("false", "0")


# Shapes


def created(moment: datetime | None) -> str:
    """When the network was made; Go's zero time when that is not known."""
    return "0001-01-01T00:00:00Z" if moment is None else rfc3339(moment)


def network_to_api(network: Network) -> dict[str, Any]:
    """A network in the Engine API's shape (``Network`` and ``NetworkInspect``)."""
    ipam_config: list[dict[str, str]] = []
    for config in network.ipam.config:
        shown = {"Subnet": config.subnet, "Gateway": config.gateway}
        if config.ip_range:
            shown["IPRange"] = config.ip_range
        ipam_config.append(shown)
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": created(network.created_at),
        "Scope": SWARM_SCOPE,
        "Driver": network.driver,
        "EnableIPv4": True,
        "EnableIPv6": network.enable_ipv6,
        "IPAM": {
            "Driver": network.ipam.driver or "default",
            "Options": dict(network.ipam.options),
            "Config": ipam_config,
        },
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Ingress": network.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {**network.options, VXLAN_OPTION: str(network.vni)},
        "Labels": dict(network.labels),
    }


def node_endpoint(network: Network, node: Node | None) -> dict[str, Any]:
    """The node's own endpoint on the network, as Swarm's daemon lists it beside the
    containers: ``ingress-sbox`` on the ingress network, ``lb-NAME`` on another."""
    address = next(
        (a.address for a in (node.attachments if node else ()) if a.network_id == network.id),
        None,
    )
    if address is None:
        return {}
    key, name = (
        ("ingress-sbox", "ingress-endpoint")
        if network.ingress
        else (f"lb-{network.name}", f"{network.name}-endpoint")
    )
    return {
        key: {
            "Name": name,
            "EndpointID": "",
            "MacAddress": "",
            "IPv4Address": address,
            "IPv6Address": "",
        }
    }


def peers(network: Network, nodes: Iterable[Node]) -> list[dict[str, str]]:
    """The nodes that have the network (an address on it), as Swarm lists its gossip peers:
    a name and the node's address."""
    return [
        {"Name": node.id[:12], "IP": node.status.addr}
        for node in sorted(nodes, key=lambda n: n.id)
        if any(a.network_id == network.id for a in node.attachments)
    ]


# Who uses a network


def services_using(network: Network, services: Iterable[Service]) -> list[Service]:
    """Services attached to the network (for ingress: those publishing ingress ports)."""
    found = [
        service
        for service in services
        if (network.ingress and publishes_ingress(spec_ports(service)))
        or any(config.target == network.id for config in network_configs(service))
    ]
    return sorted(found, key=lambda s: s.spec.name)


def tasks_using(network: Network, tasks: Iterable[Task]) -> list[Task]:
    """Live tasks attached to the network (meant to run, not ended)."""
    return [
        task
        for task in tasks
        if task.desired_state <= TaskState.COMPLETE  # a job's task runs to COMPLETE
        and task.state <= TaskState.RUNNING
        and any(a.network.id == network.id for a in task.networks_attachments)
    ]


def check_removable(network: Network, services: Sequence[Service], tasks: Sequence[Task]) -> None:
    using = services_using(network, services)
    if using and network.ingress:
        raise InvalidSpec(
            f"ingress network cannot be removed because service {using[0].spec.name} depends on it"
        )
    if using:
        raise InvalidSpec(f"network {network.name} is in use by service {using[0].spec.name}")
    attached = tasks_using(network, tasks)
    if attached:
        raise InvalidSpec(f"network {network.name} is in use by task {task_name(attached[0])}")


# Filters


def _search(patterns: Sequence[str], value: str) -> bool:
    """moby's filters.Args.Match: an exact value, or a regular expression found in it."""
    for pattern in patterns:
        if pattern == value:
            return True
        try:
            if re.search(pattern, value):
                return True
        except re.error:
            continue
    return not patterns


def _bool_filter(filters: Filters, key: str) -> bool | None:
    values = filters.get(key)
    if not values:
        return None
    value = values[0].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidSpec(f"Invalid filter: '{key}'='{values[0]}'")


def check_filters(filters: Filters) -> None:
    filters.validate(ACCEPTED_FILTERS)
    for value in filters.get("type"):
        if value not in ("custom", "builtin"):
            raise InvalidSpec(f"Invalid filter: 'type'='{value}'")
    _bool_filter(filters, "dangling")


def network_matches(network: Network, filters: Filters, in_use: bool) -> bool:
    drivers, scopes, types = filters.get("driver"), filters.get("scope"), filters.get("type")
    dangling = _bool_filter(filters, "dangling")
    return (
        _search(filters.get("name"), network.name)
        and _search(filters.get("id"), network.id)
        and (not drivers or network.driver in drivers)
        and (not scopes or SWARM_SCOPE in scopes)
        and (not types or "custom" in types)
        and match_labels(network.labels, filters.get("label"))
        and (dangling is None or dangling != in_use)
    )


# Lookups


def find_network(reads: Reads, ref: str) -> Network | None:
    """Ours by full ID, name or unique ID prefix; None when none of ours is meant."""
    try:
        return resolve("network", ref, reads.all(Network), lambda n: (n.name,))
    except NotFound:
        return None


# Handlers


async def list_networks(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    raw_filters = request.query.get("filters")
    filters = Filters.parse(raw_filters)
    check_filters(filters)
    path = "/networks" + (f"?filters={quote(raw_filters, safe='')}" if raw_filters else "")
    # A forwarded list is the swarm's networks alone: the follower adds its engine's.
    local = [] if forwarded(request) else await request.app[ENGINE].get_json(path)
    services = store.all(Service)
    ours = [
        network_to_api(network)
        for network in sorted(store.all(Network), key=lambda n: n.name)
        if network_matches(network, filters, bool(services_using(network, services)))
    ]
    return json_response([*engine_networks(local), *ours])


async def inspect_network(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    scope = request.query.get("scope", "")
    ref = request.match_info["id"]
    # Forwarded: only the swarm's networks are the leader's to answer (404 sends the follower
    # to its own engine).
    if forwarded(request) and scope == "local":
        raise NotFound(f"network {ref} not found")
    if scope == "local":
        return await request.app[ENGINE].forward(request)
    network = find_network(store, ref)
    if network is not None:
        shown = network_to_api(network)
        nodes = store.all(Node)
        if not forwarded(request):
            # As Swarm's daemon does: the containers of this node on it, and its own endpoint.
            containers = await local_containers(request, network.id)
            node = next((n for n in nodes if n.id == control_of(request).node_id), None)
            shown["Containers"] = {**containers, **node_endpoint(network, node)}
        shown["Peers"] = peers(network, nodes)
        return json_response(shown)
    if scope == SWARM_SCOPE or forwarded(request):
        raise NotFound(f"network {ref} not found")
    return await request.app[ENGINE].forward(request)


async def remove_network(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    ref = request.match_info["id"]
    network = find_network(store, ref)
    if network is None and forwarded(request):
        raise NotFound(f"network {ref} not found")
    if network is None:
        return await request.app[ENGINE].forward(request)
    network_id = network.id

    def remove(tx: Tx) -> None:
        network = tx.find(Network, network_id)
        if network is None:  # removed since it was found
            raise NotFound(f"network {ref} not found")
        check_removable(network, tx.all(Service), tx.all(Task))
        tx.delete(network)

    await store.update(remove)
    return web.Response(status=204)


async def create_network(request: web.Request) -> web.StreamResponse:
    create = NetworkCreateRequest.from_api(await read_json_object(request))
    if create.driver != OVERLAY:
        return await create_local(request, create)
    store = store_of(request)

    def make(tx: Tx) -> Network:
        network = new_network(create, tx)
        tx.create(network)
        return network

    network = (await store.update(make)).value
    return json_response({"Id": network.id, "Warning": ""}, status=201)


def new_network(create: NetworkCreateRequest, reads: Reads) -> Network:
    """The overlay network a create request asks for, allocated, or InvalidSpec, NotFound
    or NameConflict saying why not (SwarmKit's controlapi and moby's words)."""
    existing = reads.all(Network)
    _validate_create(create, existing)
    requested = create.ipam or NetworkIPAM()
    network = Network(
        id=new_id(),
        name=create.name,
        driver=OVERLAY,
        labels=create.labels,
        options=create.options,
        internal=create.internal,
        attachable=create.attachable,
        ingress=create.ingress,
        ipam=NetworkIPAM(driver="default", config=requested.config, options=requested.options),
    )
    cluster = reads.cluster()
    pools = (cluster.default_addr_pool if cluster is not None else None) or list(DEFAULT_POOLS)
    size = cluster.subnet_size if cluster is not None else DEFAULT_SUBNET_SIZE
    allocated = allocate_network(network, existing, pools, size)
    # The VNI is kept in its field, and shown as the option.
    options = {k: v for k, v in allocated.options.items() if k != VXLAN_OPTION}
    return allocated.replace(options=options)


def _validate_create(create: NetworkCreateRequest, existing: Sequence[Network]) -> None:
    name = create.name
    if not name:
        raise InvalidSpec("meta: name must be provided")
    if name in PREDEFINED:
        raise InvalidSpec(f"{name} is a pre-defined network and cannot be created")
    if any(network.name == name for network in existing):
        raise NameConflict(f"network with name {name} already exists")
    if INTERNAL_LABEL in create.labels:
        raise InvalidSpec(
            f"label {INTERNAL_LABEL} is for predefined internal networks and cannot be"
            " applied by users"
        )
    if create.ingress:
        if create.attachable:
            raise InvalidSpec("ingress network cannot be attachable")
        for network in existing:
            if network.ingress:
                raise NameConflict(f"ingress network ({network.id}) is already present")
    if create.config_only or create.config_from:
        raise InvalidSpec("config-only networks are not supported with the overlay driver")
    if create.enable_ipv6:
        raise InvalidSpec("IPv6 is not supported on overlay networks")
    if create.enable_ipv4 is False or create.options.get("com.docker.network.enable_ipv4") in (
        "false",
        "0",
    ):
        raise InvalidSpec("IPv4 cannot be disabled in a Swarm scoped network")
    if "encrypted" in create.options:
        raise InvalidSpec("encrypted overlay networks are not supported")
    ipam = create.ipam
    if ipam is not None:
        if ipam.driver not in ("", "default"):
            raise NotFound(f'plugin "{ipam.driver}" not found')
        for config in ipam.config:
            if (config.model_extra or {}).get("AuxiliaryAddresses"):
                raise InvalidSpec("ipam configuration: auxiliary addresses are not supported")
