"""Objects in the shape Docker Swarm's API gives them, where the stored model's own JSON differs.

- A task (``task_json``): without swarmlet's own fields (``Task._not_in_api``) and the spec's
  ``Runtime`` (moby fills it in for a service's spec only), the node's generic resources it was
  given as ``GenericResources``, and each of its ``NetworksAttachments`` as Swarm gives it: the
  swarm ``Network`` object (``Spec``, ``DriverState`` with the VXLAN ID, ``IPAMOptions``) and
  the addresses, no aliases.
- A service (``service_json``): its endpoint's spec empty until the endpoint has ports or
  virtual IPs, as SwarmKit's allocator copies the spec in only when it allocates them.
- A service with ``insertDefaults`` (``insert_defaults``): the defaults SwarmKit's
  ``defaults.InterpolateService`` puts into the fields left nil.

Pure functions over models and JSON values.
"""

from __future__ import annotations

import json
from typing import Any

from swarmlet.clock import rfc3339
from swarmlet.errors import InvalidSpec
from swarmlet.models import SECOND_NS, VXLAN_OPTION, Network, Service, Task

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
# What SwarmKit's defaults.Service holds, in the Engine API's JSON.
_UPDATE_DEFAULTS = {
    "Parallelism": 1,
    "FailureAction": "pause",
    "Monitor": 5 * SECOND_NS,
    "MaxFailureRatio": 0,
    "Order": "stop-first",
}
_RESTART_DEFAULTS = {"Condition": "any", "Delay": 5 * SECOND_NS, "MaxAttempts": 0}
_STOP_GRACE_PERIOD = 10 * SECOND_NS
# Go's strconv.ParseBool.
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def go_time(moment: Any) -> str:
    return GO_ZERO_TIME if moment is None else rfc3339(moment)


def swarm_network(network: Network) -> dict[str, Any]:
    """A network as Swarm's API gives its swarm object (``swarm.Network``): what a task's
    attachment shows. The ingress network's spec holds no driver names, as Swarm's own (which
    the daemon makes with none) holds none."""
    spec: dict[str, Any] = {"Name": network.name, "Labels": dict(network.labels)}
    driver: dict[str, Any] = {} if network.ingress else {"Name": network.driver}
    if network.options:
        driver["Options"] = dict(network.options)
    spec["DriverConfiguration"] = driver
    for flag, value in (
        ("Internal", network.internal),
        ("Attachable", network.attachable),
        ("Ingress", network.ingress),
    ):
        if value:
            spec[flag] = True
    spec["IPAMOptions"] = {"Driver": {} if network.ingress else {"Name": network.ipam.driver}}
    spec["Scope"] = "swarm"
    configs = []
    for config in network.ipam.config:
        shown = {"Subnet": config.subnet}
        if config.ip_range:
            shown["Range"] = config.ip_range
        if config.gateway:
            shown["Gateway"] = config.gateway
        configs.append(shown)
    ipam: dict[str, Any] = {"Driver": {"Name": network.ipam.driver}}
    if network.ipam.options:
        ipam["Driver"]["Options"] = dict(network.ipam.options)
    if configs:
        ipam["Configs"] = configs
    return {
        "ID": network.id,
        "Version": network.version.to_api(),
        "CreatedAt": go_time(network.created_at),
        "UpdatedAt": go_time(network.updated_at or network.created_at),
        "Spec": spec,
        "DriverState": {
            "Name": network.driver,
            "Options": {**network.options, VXLAN_OPTION: str(network.vni)},
        },
        "IPAMOptions": ipam,
    }


# What a task's own JSON leaves out, written apart (or not at all) by task_json.
_TASK_EXCLUDE: dict[str, Any] = {
    **dict.fromkeys(Task._not_in_api or (), True),
    "networks_attachments": True,
    "assigned_generic_resources": True,
    "spec": {"runtime": True},
}


def task_json(task: Task, networks: dict[tuple[str, int], str]) -> str:
    """A task as Swarm's API gives it, as JSON text. ``networks`` caches each network's JSON
    (by ID and version) across the tasks of one answer: most tasks share a few networks."""
    text = task.model_dump_json(by_alias=True, exclude_none=True, exclude=_TASK_EXCLUDE)
    extra: list[str] = []
    if task.networks_attachments:
        attachments = []
        for attachment in task.networks_attachments:
            network = attachment.network
            key = (network.id, network.version.index)
            shown = networks.get(key)
            if shown is None:
                shown = networks[key] = json.dumps(swarm_network(network), separators=(",", ":"))
            addresses = json.dumps(attachment.addresses, separators=(",", ":"))
            attachments.append(
                f'{{"Network":{shown},"Addresses":{addresses}}}'
                if attachment.addresses
                else f'{{"Network":{shown}}}'
            )
        extra.append(f'"NetworksAttachments":[{",".join(attachments)}]')
    if task.assigned_generic_resources:
        resources = ",".join(
            r.model_dump_json(by_alias=True, exclude_none=True)
            for r in task.assigned_generic_resources
        )
        extra.append(f'"GenericResources":[{resources}]')
    if not extra:
        return text
    return f"{text[:-1]},{','.join(extra)}}}" if text != "{}" else f"{{{','.join(extra)}}}"


def task_to_api(task: Task) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(task_json(task, {}))
    return result


def _unallocated(service: Service) -> bool:
    endpoint = service.endpoint
    return endpoint is not None and not endpoint.ports and not endpoint.virtual_ips


def service_to_api(service: Service) -> dict[str, Any]:
    shown = service.to_api()
    if _unallocated(service):
        shown["Endpoint"] = {**shown["Endpoint"], "Spec": {}}
    return shown


_UNALLOCATED_EXCLUDE = {*(Service._not_in_api or ()), "endpoint"}


def service_json(service: Service) -> str:
    """``service_to_api`` as JSON text, written by pydantic (an unallocated endpoint is only
    ``{"Spec": {}}``: written here)."""
    if not _unallocated(service):
        return service.to_api_json()
    text = service.model_dump_json(by_alias=True, exclude_none=True, exclude=_UNALLOCATED_EXCLUDE)
    return f'{text[:-1]},"Endpoint":{{"Spec":{{}}}}}}'


def parse_insert_defaults(value: str | None) -> bool:
    """``?insertDefaults=``, read as moby reads it (Go's strconv.ParseBool, 400 otherwise)."""
    if not value:
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidSpec(
        f'invalid value for insertDefaults: {value}: strconv.ParseBool: parsing "{value}":'
        " invalid syntax"
    )


def insert_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A service spec (the API's JSON) with SwarmKit's defaults in the fields left nil, as
    ``GET /services/{id}?insertDefaults=true`` answers (``defaults.InterpolateService``)."""
    spec = dict(spec)
    template = dict(spec.get("TaskTemplate") or {})
    container = template.get("ContainerSpec")
    if container is not None and "NetworkAttachmentSpec" not in template:
        container = dict(container)
        container.setdefault("StopGracePeriod", _STOP_GRACE_PERIOD)
        container.setdefault("DNSConfig", {})
        template["ContainerSpec"] = container
    template.setdefault("Resources", {})
    restart = template.get("RestartPolicy")
    template["RestartPolicy"] = (
        dict(_RESTART_DEFAULTS)
        if restart is None
        else {**restart, "Delay": restart.get("Delay", _RESTART_DEFAULTS["Delay"])}
    )
    template.setdefault("Placement", {})
    spec["TaskTemplate"] = template
    for key in ("UpdateConfig", "RollbackConfig"):
        config = spec.get(key)
        spec[key] = (
            dict(_UPDATE_DEFAULTS)
            if config is None
            else {**config, "Monitor": config.get("Monitor", _UPDATE_DEFAULTS["Monitor"])}
        )
    return spec
