"""/services: list (with filters and status), inspect, create, update, rollback, remove."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

from aiohttp import web

from swarmlet.api.common import (
    bool_query,
    clock_of,
    forwarded,
    json_response,
    json_texts_response,
    read_json,
    version_query,
)
from swarmlet.api.proxy import ENGINE
from swarmlet.clock import rfc3339
from swarmlet.errors import EngineError, InvalidSpec
from swarmlet.ids import new_id
from swarmlet.manager.allocator import allocate_ports, held_ports
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.filters import (
    Filters,
    match_any,
    match_labels,
    match_prefix,
    match_runtime,
)
from swarmlet.manager.api.jobs import job_service_status, new_job_status, next_job_status
from swarmlet.manager.api.lookup import resolve, service_names
from swarmlet.manager.api.reads import Reads
from swarmlet.manager.api.shapes import (
    insert_defaults,
    parse_insert_defaults,
    service_json,
    service_to_api,
)
from swarmlet.manager.api.unsupported import spec_warnings
from swarmlet.manager.api.validate import (
    check_ingress_network,
    check_port_conflicts,
    check_references_exist,
    parse_service_spec,
    resolve_networks,
    unknown_network_targets,
    validate_service_spec,
    validate_service_update,
)
from swarmlet.manager.store import Store, Tx
from swarmlet.models import (
    Config,
    Endpoint,
    EndpointSpec,
    Network,
    Node,
    NodeState,
    Secret,
    Service,
    ServiceSpec,
    ServiceStatus,
    Task,
    TaskState,
    Version,
)
from swarmlet.models.service import UpdateState, UpdateStatus

ACCEPTED_FILTERS = ("id", "label", "mode", "name", "runtime")


def service_matches(service: Service, filters: Filters) -> bool:
    return (
        match_prefix(service.spec.name, filters.get("name"))
        and match_prefix(service.id, filters.get("id"))
        and match_labels(service.spec.labels, filters.get("label"))
        and match_any(service.spec.mode.kind.value, filters.get("mode"))
        and match_runtime(filters.get("runtime"))
    )


def service_status(
    service: Service, tasks: Iterable[Task], nodes: Mapping[str, Node]
) -> ServiceStatus:
    """Running and desired task counts, as SwarmKit's ListServiceStatuses counts them: only
    tasks on nodes that exist and are not down count."""
    if service.spec.mode.is_job:
        return job_service_status(service, tasks)
    running = desired = 0
    is_global = service.is_global
    # Whether each node counts, looked up once per node rather than once per task.
    counts: dict[str | None, bool] = {}
    for task in tasks:
        node_id = task.node_id
        counted = counts.get(node_id)
        if counted is None:
            node = nodes.get(node_id or "")
            counted = counts[node_id] = node is not None and node.status.state is not NodeState.DOWN
        if not counted:
            continue
        if task.status.state is TaskState.RUNNING:
            running += 1
        if is_global and task.desired_state is TaskState.RUNNING:
            desired += 1
    if not is_global:
        desired = service.replicas
    return ServiceStatus(running_tasks=running, desired_tasks=desired, completed_tasks=0)


def tasks_differ(old: ServiceSpec, new: ServiceSpec) -> bool:
    """Whether tasks of the old spec are out of date under the new one.

    Swarm's IsTaskDirty compares only the task template and the endpoint spec, so scaling or
    relabelling a service leaves its tasks alone; the spec version moves only when these do.
    """
    return (
        old.task_template != new.task_template
        or old.endpoint_spec != new.endpoint_spec
        or old.networks != new.networks
    )


def endpoint_for(
    spec: ServiceSpec, current: Endpoint | None, service_id: str, services: Iterable[Service]
) -> Endpoint:
    """The endpoint for a spec: its published ports allocated (a dynamic one keeps its
    number while the spec still publishes its target port), the VIPs it had kept (the
    allocator adjusts them to the spec's networks)."""
    endpoint_spec = spec.endpoint_spec or EndpointSpec()
    current_ports = list(current.ports or ()) if current else []
    taken = held_ports(s for s in services if s.id != service_id)
    ports = allocate_ports(endpoint_spec.ports or (), current_ports, taken)
    base = current or Endpoint(spec=endpoint_spec)
    return base.replace(spec=endpoint_spec, ports=ports or None)


async def refuse_local_networks(request: web.Request, spec: ServiceSpec, store: Store) -> None:
    """A target that is none of the cluster's networks may be one of the engine's: moby
    refuses those with its own words (any other unknown target is a 404 later)."""
    if forwarded(request):
        return  # the follower's engine is not this host's: an unknown target is a 404 later
    for target in unknown_network_targets(spec, store.all(Network)):
        try:
            local = await request.app[ENGINE].get_json(f"/networks/{quote(target, safe='')}")
        except EngineError:
            continue
        name = local.get("Name", target) if isinstance(local, dict) else target
        raise InvalidSpec(
            f"The network {name} cannot be used with services. Only networks scoped to the"
            " swarm can be used, such as those created with the overlay driver."
        )


def prepare_spec(spec: ServiceSpec, service_id: str, reads: Reads) -> ServiceSpec:
    """Network targets resolved to IDs, and what needs the cluster's state checked: the
    ingress network for ingress ports, published ports free, the secrets and configs it
    refers to there."""
    networks = reads.all(Network)
    spec = resolve_networks(spec, networks)
    check_ingress_network(spec, networks)
    check_port_conflicts(spec, service_id, reads.all(Service))
    check_references_exist(spec, reads.all(Secret), reads.all(Config))
    return spec


def find_service(reads: Reads, ref: str) -> Service:
    return resolve("service", ref, reads.all(Service), service_names)


async def list_services(request: web.Request) -> web.Response:
    store = store_of(request)
    filters = Filters.parse(request.query.get("filters"))
    filters.validate(ACCEPTED_FILTERS)
    services = [s for s in store.all(Service) if service_matches(s, filters)]
    if bool_query(request, "status"):
        nodes = {node.id: node for node in store.all(Node)}
        services = [
            s.replace(service_status=service_status(s, store.tasks_of_service(s.id), nodes))
            for s in services
        ]
    return json_texts_response(service_json(service) for service in services)


async def inspect_service(request: web.Request) -> web.Response:
    """A service; with ``insertDefaults=true`` (which `docker service inspect` always sends)
    its spec with SwarmKit's defaults where it has none."""
    insert = parse_insert_defaults(request.query.get("insertDefaults"))
    shown = service_to_api(find_service(store_of(request), request.match_info["id"]))
    if insert:
        shown["Spec"] = insert_defaults(shown["Spec"])
    return json_response(shown)


async def create_service(request: web.Request) -> web.Response:
    store = store_of(request)
    spec = parse_service_spec(await read_json(request))
    validate_service_spec(spec)
    await refuse_local_networks(request, spec, store)
    service_id = new_id()
    job_status = new_job_status(spec, clock_of(request).now())

    def create(tx: Tx) -> ServiceSpec:
        prepared = prepare_spec(spec, "", tx)
        endpoint = endpoint_for(prepared, None, service_id, tx.all(Service))
        service = Service(
            id=service_id,
            spec=prepared,
            spec_version=Version(index=1),
            endpoint=endpoint,
            job_status=job_status,
        )
        tx.create(service)
        return prepared

    prepared = (await store.update(create)).value
    return json_response({"ID": service_id, "Warnings": spec_warnings(prepared)}, status=201)


async def update_service(request: web.Request) -> web.Response:
    store = store_of(request)
    version = version_query(request, "service")
    rollback = request.query.get("rollback", "")
    if rollback not in ("", "none", "previous"):
        raise InvalidSpec(f"unrecognized rollback option {rollback}")
    current = find_service(store, request.match_info["id"])
    spec = parse_service_spec(await read_json(request), default_name=current.spec.name)
    validate_service_update(current, spec)
    update_status = None
    if rollback == "previous":
        if current.previous_spec is None:
            raise InvalidSpec(f"service {current.id} does not have a previous spec")
        spec = current.previous_spec
        update_status = UpdateStatus(
            state=UpdateState.ROLLBACK_STARTED,
            started_at=rfc3339(clock_of(request).now()),
            message="manually requested rollback",
        )
    await refuse_local_networks(request, spec, store)
    service_id = current.id
    now = clock_of(request).now()

    def update(tx: Tx) -> ServiceSpec:
        current = tx.get(Service, service_id)
        prepared = prepare_spec(spec, service_id, tx)
        changes: dict[str, object] = {
            "spec": prepared,
            "previous_spec": current.spec,
            "update_status": update_status,
            "version": Version(index=version),
        }
        if tasks_differ(current.spec, prepared):
            changes["spec_version"] = Version(index=current.spec_version.index + 1)
        changes["endpoint"] = endpoint_for(prepared, current.endpoint, service_id, tx.all(Service))
        changes["job_status"] = next_job_status(current, now)
        tx.update(current.replace(**changes))
        return prepared

    prepared = (await store.update(update)).value
    return json_response({"Warnings": spec_warnings(prepared)})


async def remove_service(request: web.Request) -> web.Response:
    store = store_of(request)
    ref = request.match_info["id"]

    def remove(tx: Tx) -> None:
        # The service and the end of its tasks in one commit: no watcher sees one without
        # the other.
        service = find_service(tx, ref)
        tx.delete(service)
        for task in tx.tasks_of_service(service.id):
            if task.desired_state is not TaskState.REMOVE:
                tx.update(task.replace(desired_state=TaskState.REMOVE))

    await store.update(remove)
    return web.Response()
