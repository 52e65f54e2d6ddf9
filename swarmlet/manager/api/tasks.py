"""/tasks: list (with filters, including the CLI's hidden `_up-to-date`) and inspect."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from swarmlet.errors import InvalidSpec
from swarmlet.manager.api.common import json_response, store_of
from swarmlet.manager.api.filters import Filters, match_labels, match_prefix, match_runtime
from swarmlet.manager.api.lookup import node_names, resolve, service_names, task_name, task_names
from swarmlet.manager.store import Store
from swarmlet.models import Node, Service, Task, TaskState

ACCEPTED_FILTERS = (
    "desired-state",
    "id",
    "label",
    "name",
    "node",
    "service",
    "_up-to-date",
    "runtime",
)
_STATES = frozenset(state.value for state in TaskState)


def task_filter(store: Store, filters: Filters) -> Filters:
    """The filters checked, with service and node references resolved to IDs (moby's
    GetTasks: an unknown one is a 404)."""
    filters.validate(ACCEPTED_FILTERS)
    for state in filters.get("desired-state"):
        if state and state.lower() not in _STATES:
            raise InvalidSpec(f"Invalid desired-state filter: '{state}'")
    if filters.contains("service"):
        services = store.all(Service)
        ids = [
            resolve("service", ref, services, service_names).id for ref in filters.get("service")
        ]
        filters = filters.with_values("service", ids)
    if filters.contains("node"):
        nodes = store.all(Node)
        ids = [resolve("node", ref, nodes, node_names).id for ref in filters.get("node")]
        filters = filters.with_values("node", ids)
    return filters


def task_matches(task: Task, service: Service | None, filters: Filters) -> bool:
    states = [s.lower() for s in filters.get("desired-state") if s]
    labels: Mapping[str, str] = {**task.labels, **(service.spec.labels if service else {})}
    up_to_date = service is not None and task.spec_version.index == service.spec_version.index
    return (
        match_prefix(task_name(task), filters.get("name"))
        and match_prefix(task.id, filters.get("id"))
        and match_labels(labels, filters.get("label"))
        and (not filters.contains("service") or task.service_id in filters.get("service"))
        and (not filters.contains("node") or (task.node_id or "") in filters.get("node"))
        and (not states or task.desired_state.value in states)
        and (not filters.get("_up-to-date") or up_to_date)
        and match_runtime(filters.get("runtime"))
    )


async def list_tasks(request: web.Request) -> web.Response:
    store = store_of(request)
    filters = task_filter(store, Filters.parse(request.query.get("filters")))
    service_ids = list(dict.fromkeys(filters.get("service")))
    tasks = (
        [task for sid in service_ids for task in store.tasks_of_service(sid)]
        if service_ids
        else store.all(Task)
    )
    matching = [
        task.to_api()
        for task in tasks
        if task_matches(task, store.find(Service, task.service_id), filters)
    ]
    return json_response(matching)


async def inspect_task(request: web.Request) -> web.Response:
    store = store_of(request)
    task = resolve("task", request.match_info["id"], store.all(Task), task_names)
    return json_response(task.to_api())
