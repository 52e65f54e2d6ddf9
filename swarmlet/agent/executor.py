"""How a task becomes a container: the plan (pure) and the thin driver that carries it out.

``plan_container`` turns a task into the engine's create request, named and labelled as Swarm
does, so a restarted agent can find what is its own. The driver functions below make the few
engine calls of each step and translate what the engine says into what the task controller
needs; they decide nothing about task states.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from swarmlet.agent.engine import ContainerInfo, Engine
from swarmlet.agent.host_ports import host_mode_ports, port_bindings
from swarmlet.errors import EngineError, NotFound
from swarmlet.models import SECOND_NS, ContainerSpec, Task

log = logging.getLogger(__name__)

LABEL_NODE_ID = "com.docker.swarm.node.id"
LABEL_SERVICE_ID = "com.docker.swarm.service.id"
LABEL_SERVICE_NAME = "com.docker.swarm.service.name"
LABEL_TASK_ID = "com.docker.swarm.task.id"
LABEL_TASK_NAME = "com.docker.swarm.task.name"
LABEL_TASK = "com.docker.swarm.task"

DEFAULT_STOP_GRACE_NS = 10 * SECOND_NS


@dataclass(frozen=True)
class ContainerPlan:
    """The create request for a task's container."""

    name: str
    image: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    stop_timeout: int  # seconds


def task_name(task: Task) -> str:
    """``web.3`` (set by the manager); something readable if a task arrives without one."""
    if task.name:
        return task.name
    if task.slot is not None:
        return f"{task.service_name}.{task.slot}"
    return task.service_name or "task"


def container_name(task: Task) -> str:
    # Swarm's container names: <service>.<slot or node>.<task id>.
    return f"{task_name(task)}.{task.id}"


def stop_timeout(spec: ContainerSpec) -> int:
    """The grace period in whole seconds, rounded up so a task gets at least what it asked."""
    grace = spec.stop_grace_period if spec.stop_grace_period is not None else DEFAULT_STOP_GRACE_NS
    return max(0, math.ceil(grace / SECOND_NS))


def plan_container(task: Task, node_id: str, extra_labels: Mapping[str, str]) -> ContainerPlan:
    """The create request, field for field as moby's Swarm executor makes it
    (daemon/cluster/executor/container/container.go: ``config``, ``hostConfig``,
    ``resources``); the table is in docs/agent.md."""
    spec = task.spec.container_spec
    name = container_name(task)
    timeout = stop_timeout(spec)
    # Swarm's own labels come last: adoption relies on them, so nothing may override them.
    labels = {
        **spec.labels,
        **extra_labels,
        LABEL_SERVICE_ID: task.service_id,
        LABEL_SERVICE_NAME: task.service_name,
        LABEL_TASK_ID: task.id,
        LABEL_TASK_NAME: name,
        LABEL_NODE_ID: node_id,
        LABEL_TASK: "",
    }
    config: dict[str, Any] = {
        "Image": spec.image,
        "Labels": labels,
        "Env": spec.env,
        "WorkingDir": spec.dir,
        "User": spec.user,
        "Hostname": spec.hostname,
        "Tty": spec.tty,
        "OpenStdin": spec.open_stdin,
        "StopSignal": spec.stop_signal,
        # Also the container's own: a stop without a timeout (an agent cleaning up a container
        # whose task it no longer knows) then still honours the task's grace period.
        "StopTimeout": timeout,
    }
    if spec.healthcheck is not None:
        # As the Engine API's HealthConfig; Test ["NONE"] turns off the image's HEALTHCHECK.
        config["Healthcheck"] = spec.healthcheck.to_api()
    if spec.command:
        # Command replaces the image's whole invocation, as in Swarm: the image's Cmd must not
        # be appended to it, so Cmd is set even when there are no Args.
        config["Entrypoint"] = spec.command
        config["Cmd"] = spec.args or []
    elif spec.args:
        config["Cmd"] = spec.args
    host_config: dict[str, Any] = {
        "Init": spec.init,
        "Mounts": spec.mounts,
        "GroupAdd": spec.groups or None,
        "ReadonlyRootfs": spec.read_only,
        "Isolation": spec.isolation.value,
        "Sysctls": spec.sysctls or None,
        "CapAdd": spec.capability_add or None,
        "CapDrop": spec.capability_drop or None,
        "OomScoreAdj": spec.oom_score_adj or None,
        "ExtraHosts": extra_hosts(spec.hosts or ()) or None,
        **_dns(spec),
        **_resources(task),
    }
    # The service's own, else the swarm's default the task was made with (TaskDefaults).
    log_driver = task.spec.log_driver or task.log_driver
    if log_driver is not None:
        host_config["LogConfig"] = {
            "Type": log_driver.name,
            "Config": dict(log_driver.options or {}),
        }
    ports = host_mode_ports(task.endpoint_spec)
    if ports:
        config["ExposedPorts"], host_config["PortBindings"] = port_bindings(ports)
    return ContainerPlan(
        name=name,
        image=spec.image,
        config=_without_none(config),
        host_config=_without_none(host_config),
        stop_timeout=timeout,
    )


def extra_hosts(hosts: Iterable[str]) -> list[str]:
    """``ContainerSpec.Hosts`` are hosts(5) lines, ``IP name [aliases...]``; the engine's
    ``ExtraHosts`` are ``name:IP``. As moby, the aliases are dropped, and so is a line without
    a name."""
    converted = []
    for entry in hosts:
        fields = entry.split()
        if len(fields) > 1:
            converted.append(f"{fields[1]}:{fields[0]}")
    return converted


def _dns(spec: ContainerSpec) -> dict[str, Any]:
    dns = spec.dns_config
    if dns is None:
        return {}
    return {"Dns": dns.nameservers, "DnsSearch": dns.search, "DnsOptions": dns.options}


def _resources(task: Task) -> dict[str, Any]:
    """The HostConfig's resources, as moby's ``resources()``: the pids limit and ulimits, then
    from the limits only (reservations are the scheduler's, never the container's) the CPUs,
    the memory with its swap (``SwapBytes`` is swap beyond the memory: ``MemorySwap`` is their
    sum, -1 unlimited, and needs a memory limit) and the swappiness. Zero is "not set"."""
    spec = task.spec.container_spec
    resources: dict[str, Any] = {}
    if spec.ulimits:
        resources["Ulimits"] = [
            {"Name": ulimit.name, "Soft": ulimit.soft, "Hard": ulimit.hard}
            for ulimit in spec.ulimits
        ]
    requirements = task.spec.resources
    limits = requirements.limits if requirements is not None else None
    if requirements is None or limits is None:
        return resources
    if limits.pids is not None and limits.pids > 0:
        resources["PidsLimit"] = limits.pids
    if limits.nano_cpus > 0:
        resources["NanoCpus"] = limits.nano_cpus
    if limits.memory_bytes > 0:
        resources["Memory"] = limits.memory_bytes
        swap = requirements.swap_bytes
        if swap == -1:
            resources["MemorySwap"] = -1
        elif swap is not None and swap >= 0:
            resources["MemorySwap"] = limits.memory_bytes + swap
    if requirements.memory_swappiness is not None:
        resources["MemorySwappiness"] = requirements.memory_swappiness
    return resources


def with_mounts(plan: ContainerPlan, mounts: list[dict[str, Any]]) -> ContainerPlan:
    """The plan with more ``HostConfig.Mounts`` after the spec's own (a task's secrets and
    configs)."""
    if not mounts:
        return plan
    host_config = {**plan.host_config, "Mounts": [*(plan.host_config.get("Mounts") or []), *mounts]}
    return replace(plan, host_config=host_config)


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# -- the driver -----------------------------------------------------------------------------


async def ensure_image(engine: Engine, image: str) -> None:
    """Pull the image unless it is present. Raises NotFound("No such image: …") when it
    cannot be had, which is what Swarm reports for a task whose image is missing."""
    try:
        await engine.inspect_image(image)
        return
    except NotFound:
        pass
    try:
        await engine.pull_image(image)
    except (NotFound, EngineError) as exc:
        if isinstance(exc, EngineError) and exc.status == 0:
            raise  # the engine is unreachable: not a verdict on the image
        log.warning("pulling %s: %s", image, exc.message)
        raise NotFound(f"No such image: {image}") from exc


async def create(engine: Engine, plan: ContainerPlan) -> str:
    """Create the task's container, or find the one an earlier attempt already made."""
    try:
        return await engine.create_container(plan.name, plan.config, plan.host_config)
    except EngineError as exc:
        if exc.status != 409:
            raise
        existing = await engine.inspect_container(plan.name)
        if existing.labels.get(LABEL_TASK_ID) != plan.config["Labels"][LABEL_TASK_ID]:
            raise
        return existing.id


async def start(engine: Engine, container: str) -> ContainerInfo:
    await engine.start_container(container)
    return await engine.inspect_container(container)


async def stop(engine: Engine, container: str, grace: int | None) -> ContainerInfo | None:
    """Stop with the container's stop signal, then SIGKILL after ``grace`` seconds.
    Returns the stopped container, or None when there is none."""
    try:
        await engine.stop_container(container, grace)
        return await engine.inspect_container(container)
    except NotFound:
        return None


async def remove(engine: Engine, container: str) -> None:
    with contextlib.suppress(NotFound):
        await engine.remove_container(container, force=True)
