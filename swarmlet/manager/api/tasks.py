"""/tasks: list (with filters, including the CLI's hidden `_up-to-date`) and inspect."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from swarmlet.api.common import json_response, json_texts_response
from swarmlet.errors import InvalidSpec
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.filters import Filters, match_labels, match_prefix, match_runtime
from swarmlet.manager.api.lookup import node_names, resolve, service_names, task_name, task_names
from swarmlet.manager.api.shapes import task_json, task_to_api
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


def task_matcher(filters: Filters) -> Callable[[Task, Service | None], bool]:
    """The filters as one test of a task (and its service, if it still exists), each filter
    read once per request rather than once per task."""
    names, ids, labels = filters.get("name"), filters.get("id"), filters.get("label")
    services = frozenset(filters.get("service")) if filters.contains("service") else None
    nodes = frozenset(filters.get("node")) if filters.contains("node") else None
    states = frozenset(s.lower() for s in filters.get("desired-state") if s)
    up_to_date = bool(filters.get("_up-to-date"))
    runtime = match_runtime(filters.get("runtime"))

    def matches(task: Task, service: Service | None) -> bool:
        if services is not None and task.service_id not in services:
            return False
        if nodes is not None and (task.node_id or "") not in nodes:
            return False
        # TaskState is a StrEnum: a state is equal to (and hashes as) its value.
        if states and task.desired_state not in states:
            return False
        if up_to_date and (
            service is None or task.spec_version.index != service.spec_version.index
        ):
            return False
        if labels:
            merged: Mapping[str, str] = {
                **task.labels,
                **(service.spec.labels if service else {}),
            }
            if not match_labels(merged, labels):
                return False
        return runtime and match_prefix(task.id, ids) and match_prefix(task_name(task), names)

    return matches


async def list_tasks(request: web.Request) -> web.Response:
    store = store_of(request)
    filters = task_filter(store, Filters.parse(request.query.get("filters")))
    service_ids = list(dict.fromkeys(filters.get("service")))
    tasks = (
        [task for sid in service_ids for task in store.tasks_of_service(sid)]
        if service_ids
        else store.all(Task)
    )
    if filters.values:  # with none, every task matches: no need to ask each one
        matches = task_matcher(filters)
        tasks = [task for task in tasks if matches(task, store.find(Service, task.service_id))]
    networks: dict[tuple[str, int], str] = {}
    return json_texts_response(task_json(task, networks) for task in tasks)


async def inspect_task(request: web.Request) -> web.Response:
    store = store_of(request)
    task = resolve("task", request.match_info["id"], store.all(Task), task_names)
    return json_response(task_to_api(task))
