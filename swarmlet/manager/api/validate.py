"""A ServiceSpec is checked once, here, at the edge: what SwarmKit's controlapi refuses.

Pure functions over models; each refusal is an InvalidSpec whose message names the field, in
SwarmKit's words where it has some.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from swarmlet.errors import InvalidSpec, NotFound
from swarmlet.manager.allocator import NO_INGRESS, publishes_ingress
from swarmlet.manager.api.lookup import resolve
from swarmlet.manager.scheduler.constraints import parse_constraints
from swarmlet.models import (
    Config,
    ContainerSpec,
    EndpointSpec,
    FileTarget,
    Network,
    NetworkAttachmentConfig,
    PortConfig,
    PublishMode,
    ReplicatedMode,
    ResolutionMode,
    ResourceRequirements,
    ResourceSpec,
    Secret,
    Service,
    ServiceMode,
    ServiceSpec,
    UpdateConfig,
)
from swarmlet.template.expand import validate_container_spec

# SwarmKit's `[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*`, with one character per repetition: Go's RE2 runs
# that in linear time, but Python's backtracking `re` takes 2^n steps to refuse n letters and a
# '!' (seconds at 28, with the manager's event loop blocked). This form matches the same names.
_DNS_NAME = re.compile(r"[a-zA-Z0-9](?:[-_]*[A-Za-z0-9])*")

# The reference grammar of distribution/reference: [domain/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)

_MIN_NANO_CPUS = 1_000_000
_MIN_MEMORY = 4 * 1024 * 1024

# Docker names unnamed services like containers: adjective_scientist.
_ADJECTIVES = ("brave", "calm", "eager", "fervent", "gifted", "happy", "keen", "quirky", "zen")
_SURNAMES = ("curie", "hopper", "lovelace", "noether", "ritchie", "shannon", "turing", "wing")


def random_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"


def parse_service_spec(body: Any, default_name: str = "") -> ServiceSpec:
    """The ServiceSpec of a create or update body, with moby's defaults filled in: a name
    when none is given (random, like moby's, on create), one replica when no mode is."""
    if not isinstance(body, dict):
        raise InvalidSpec("invalid JSON: the body must be a ServiceSpec object")
    spec = ServiceSpec.from_api(body)
    if not spec.name:
        spec = spec.replace(name=default_name or random_name())
    mode = spec.mode
    if not _modes_set(mode) and not mode.model_extra:
        spec = spec.replace(mode=ServiceMode(replicated=ReplicatedMode()))
    return spec


def _modes_set(mode: ServiceMode) -> int:
    return sum(
        kind is not None
        for kind in (mode.replicated, mode.global_, mode.replicated_job, mode.global_job)
    )


def validate_service_spec(spec: ServiceSpec) -> None:
    _validate_name(spec.name)
    _validate_mode(spec.mode)
    _validate_task_template(spec)
    if spec.mode.is_job:
        # SwarmKit's validateJob: a job has no rolling update (its update config unchecked).
        if spec.update_config is not None:
            raise InvalidSpec("Jobs may not have an update config")
    else:
        _validate_update_config("UpdateConfig", spec.update_config)
    _validate_update_config("RollbackConfig", spec.rollback_config)
    if spec.endpoint_spec is not None:
        _validate_endpoint(spec.endpoint_spec)


def validate_service_update(current: Service, spec: ServiceSpec) -> None:
    validate_service_spec(spec)
    if spec.name != current.spec.name:
        raise InvalidSpec("renaming services is not supported")
    if spec.mode.kind != current.spec.mode.kind:
        raise InvalidSpec("service mode change is not allowed")


def _validate_name(name: str) -> None:
    if not _DNS_NAME.fullmatch(name):
        raise InvalidSpec(f"invalid name {name!r}: name must be valid as a DNS name component")
    if len(name) > 63:
        raise InvalidSpec(f"invalid name {name!r}: name must be 63 characters or fewer")


def _validate_mode(mode: ServiceMode) -> None:
    if mode.model_extra:
        kinds = ", ".join(sorted(mode.model_extra))
        raise InvalidSpec(
            f"Mode: {kinds} is not supported (only Replicated, Global, ReplicatedJob and GlobalJob)"
        )
    if _modes_set(mode) > 1:
        raise InvalidSpec("Mode: must specify only one service mode")
    if mode.replicated is not None and mode.replicated.replicas < 0:
        raise InvalidSpec("Mode.Replicated.Replicas: must not be negative")
    job = mode.replicated_job
    if job is not None and job.max_concurrent < 0:
        raise InvalidSpec("Maximum concurrent jobs must not be negative")
    if job is not None and job.total_completions < 0:
        raise InvalidSpec("Total completed jobs must not be negative")


def _validate_task_template(spec: ServiceSpec) -> None:
    task = spec.task_template
    image = task.container_spec.image
    if not image:
        raise InvalidSpec("ContainerSpec: image reference must be provided")
    if len(image) > 255 or not _REFERENCE.fullmatch(image):
        raise InvalidSpec(f"ContainerSpec: {image!r} is not a valid repository/tag")
    if task.resources is not None:
        _validate_resources("Limits", task.resources.limits)
        _validate_resources("Reservations", task.resources.reservations)
        _validate_engine_resources(task.resources)
    policy = task.restart_policy
    if policy is not None:
        if policy.delay < 0:
            raise InvalidSpec("TaskSpec: restart-delay cannot be negative")
        if policy.window < 0:
            raise InvalidSpec("TaskSpec: restart-window cannot be negative")
        if policy.max_attempts < 0:
            raise InvalidSpec("TaskSpec: restart-max-attempts cannot be negative")
    if task.placement is not None:
        parse_constraints(task.placement.constraints)
        if task.placement.max_replicas < 0:
            raise InvalidSpec("Placement.MaxReplicas: must not be negative")
    # SwarmKit's validateContainerSpec: the templates expanded for a dummy node and task
    # (a TemplateError is an InvalidSpec: "expanding env failed: ...").
    validate_container_spec(task)
    _validate_references(task.container_spec)
    _validate_container_limits(task.container_spec)


def _validate_resources(which: str, resources: ResourceSpec | None) -> None:
    if resources is None:
        return
    if resources.nano_cpus and resources.nano_cpus < _MIN_NANO_CPUS:
        raise InvalidSpec(
            f"Resources.{which}: invalid cpu value {resources.nano_cpus / 1e9:g}:"
            " Must be at least 0.001"
        )
    if resources.memory_bytes and resources.memory_bytes < _MIN_MEMORY:
        raise InvalidSpec(
            f"Resources.{which}: invalid memory value {resources.memory_bytes}:"
            " Must be at least 4MiB"
        )


def _validate_engine_resources(resources: ResourceRequirements) -> None:
    # Neither moby nor SwarmKit checks these: the engine refuses the task's container. Refused
    # here instead, with the engine's words, so that nothing is half made.
    pids = resources.limits.pids if resources.limits is not None else None
    if pids is not None and pids < 0:
        raise InvalidSpec(
            f"Resources.Limits: invalid pids value {pids}: Must be at least 0 (0 is unlimited)"
        )
    swap = resources.swap_bytes
    if swap is not None and swap < -1:
        raise InvalidSpec(
            f"Resources.SwapBytes: invalid swap value {swap}: Must be at least -1 (unlimited)"
        )
    swappiness = resources.memory_swappiness
    if swappiness is not None and not -1 <= swappiness <= 100:
        raise InvalidSpec(
            f"Resources.MemorySwappiness: Invalid value: {swappiness},"
            " valid memory swappiness range is 0-100 (-1 unsets it)"
        )


# go-units' ulimit names (the CLI's --ulimit and the engine's HostConfig.Ulimits).
_ULIMITS = frozenset(
    {
        "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
        "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
    }
)  # fmt: skip


def _validate_container_limits(container: ContainerSpec) -> None:
    """What the engine would refuse at the task's container: the OOM score adjustment's range
    and the ulimits (go-units' words, and its comparison of soft and hard)."""
    oom = container.oom_score_adj
    if oom is not None and not -1000 <= oom <= 1000:
        raise InvalidSpec(
            f"ContainerSpec.OomScoreAdj: Invalid value {oom},"
            " range for oom score adj is [-1000, 1000]"
        )
    for ulimit in container.ulimits or ():
        if ulimit.name not in _ULIMITS:
            raise InvalidSpec(f"ContainerSpec.Ulimits: invalid ulimit type: {ulimit.name}")
        for value in (ulimit.soft, ulimit.hard):
            if value < -1:
                raise InvalidSpec(
                    f"ContainerSpec.Ulimits: invalid {ulimit.name} value {value}:"
                    " Must be at least -1 (unlimited)"
                )
        if ulimit.soft > ulimit.hard:
            raise InvalidSpec(
                "ContainerSpec.Ulimits: ulimit soft limit must be less than or equal to hard"
                f" limit: {ulimit.soft} > {ulimit.hard}"
            )


def _validate_update_config(which: str, config: UpdateConfig | None) -> None:
    if config is None:
        return
    if config.parallelism < 0:
        raise InvalidSpec(f"{which}: parallelism cannot be negative")
    if config.delay < 0:
        raise InvalidSpec(f"{which}: update-delay cannot be negative")
    if config.monitor < 0:
        raise InvalidSpec(f"{which}: update-monitor cannot be negative")
    if not 0 <= config.max_failure_ratio <= 1:
        raise InvalidSpec(f"{which}: update-maxfailureratio cannot be less than 0 or bigger than 1")


def _validate_endpoint(endpoint: EndpointSpec) -> None:
    # The mode, protocols and publish modes are enums of the models: a value outside them
    # was refused as the body was read, naming the field.
    seen: set[tuple[int, str]] = set()
    for port in endpoint.ports or ():
        _validate_port(port)
        if endpoint.mode == ResolutionMode.DNSRR and port.publish_mode == PublishMode.INGRESS:
            raise InvalidSpec(
                "EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
            )
        if port.publish_mode == PublishMode.INGRESS and port.published_port:
            key = (port.published_port, port.protocol)
            if key in seen:
                raise InvalidSpec("EndpointSpec: duplicate published ports provided")
            seen.add(key)


def _validate_port(port: PortConfig) -> None:
    if not 1 <= port.target_port <= 65535:
        raise InvalidSpec(f"EndpointSpec: invalid target port {port.target_port}")
    if port.published_port is not None and not 0 <= port.published_port <= 65535:
        raise InvalidSpec(f"EndpointSpec: invalid published port {port.published_port}")


def check_port_conflicts(spec: ServiceSpec, service_id: str, services: Iterable[Service]) -> None:
    """A published port belongs to one service: SwarmKit's checkPortConflicts.

    An ingress port conflicts with any other use of the same port and protocol; host-mode
    ports of different services may share a port (the scheduler keeps them apart).
    """
    ports = list(spec.endpoint_spec.ports or ()) if spec.endpoint_spec else []
    ingress = _published(ports, PublishMode.INGRESS)
    host = _published(ports, PublishMode.HOST)
    if not ingress and not host:
        return
    for other in services:
        if other.id == service_id:
            continue
        theirs = list(other.spec.endpoint_spec.ports or ()) if other.spec.endpoint_spec else []
        theirs += list(other.endpoint.ports or ()) if other.endpoint else []
        for port in theirs:
            if not port.published_port:
                continue
            key = (port.published_port, port.protocol)
            if port.publish_mode == PublishMode.HOST and key in ingress:
                use = "a host-published port"
            elif port.publish_mode == PublishMode.INGRESS and (key in ingress or key in host):
                use = "an ingress port"
            else:
                continue
            raise InvalidSpec(
                f"port '{port.published_port}' is already in use by service"
                f" '{other.spec.name}' ({other.id}) as {use}"
            )


def _published(ports: Iterable[PortConfig], mode: PublishMode) -> set[tuple[int, str]]:
    return {
        (port.published_port, port.protocol)
        for port in ports
        if port.published_port and port.publish_mode == mode
    }


# Networks


def _find_network(target: str, networks: Sequence[Network]) -> Network:
    return resolve("network", target, networks, lambda network: (network.name,))


def unknown_network_targets(spec: ServiceSpec, networks: Sequence[Network]) -> list[str]:
    """The spec's network targets that name none of the cluster's networks."""
    unknown = []
    for config in [*(spec.task_template.networks or ()), *(spec.networks or ())]:
        try:
            _find_network(config.target, networks)
        except NotFound:
            unknown.append(config.target)
    return unknown


def resolve_networks(spec: ServiceSpec, networks: Sequence[Network]) -> ServiceSpec:
    """The spec with every network target (an ID, a name or a unique ID prefix) replaced by
    the network's ID, as moby does before the spec reaches SwarmKit; aliases are kept.

    Raises NotFound for an unknown network, InvalidSpec for the ingress network (a service
    is attached to it by publishing ports) and for a network named twice.
    """
    task_networks = _resolve_targets(spec.task_template.networks, networks)
    service_networks = _resolve_targets(spec.networks, networks)
    return spec.replace(
        task_template=spec.task_template.replace(networks=task_networks),
        networks=service_networks,
    )


def _resolve_targets(
    configs: list[NetworkAttachmentConfig] | None, networks: Sequence[Network]
) -> list[NetworkAttachmentConfig] | None:
    if configs is None:
        return None
    resolved: list[NetworkAttachmentConfig] = []
    for config in configs:
        network = _find_network(config.target, networks)
        if network.ingress:
            raise InvalidSpec(
                f'Service cannot be explicitly attached to the ingress network "{network.name}"'
            )
        if any(other.target == network.id for other in resolved):
            raise InvalidSpec(f"network {network.name} is attached more than once")
        resolved.append(config.replace(target=network.id))
    return resolved


def check_ingress_network(spec: ServiceSpec, networks: Iterable[Network]) -> None:
    """Ingress-mode ports need the ingress network (SwarmKit's words when there is none)."""
    ports = (spec.endpoint_spec.ports or []) if spec.endpoint_spec else []
    if publishes_ingress(ports) and not any(network.ingress for network in networks):
        raise InvalidSpec(NO_INGRESS)


# Secrets and configs


class _Reference(NamedTuple):
    """A secret or config reference, whichever kind: what the checks below read."""

    object_id: str
    name: str
    file: FileTarget | None
    has_target: bool


def _secret_references(container: ContainerSpec) -> list[_Reference]:
    return [
        _Reference(ref.secret_id, ref.secret_name, ref.file, ref.file is not None)
        for ref in container.secrets or ()
    ]


def _config_references(container: ContainerSpec) -> list[_Reference]:
    references = []
    for ref in container.configs or ():
        has_target = ref.file is not None or ref.runtime is not None
        references.append(_Reference(ref.config_id, ref.config_name, ref.file, has_target))
    return references


def _validate_references(container: ContainerSpec) -> None:
    """What the references must hold: moby's conversion of config targets (a file or the
    runtime, one of them), then SwarmKit's validateSecretRefsSpec/validateConfigRefsSpec (an
    ID and a name, a target, a file name, no two files of the same name). SwarmKit gives a
    missing file name no default: the CLI fills it in (the secret's name)."""
    for config in container.configs or ():
        if config.file is None and config.runtime is None:
            raise InvalidSpec("invalid Config: either File or Runtime should be set")
        if config.file is not None and config.runtime is not None:
            raise InvalidSpec("invalid Config: cannot specify both File and Runtime")
    _check_references("secret", _secret_references(container))
    _check_references("config", _config_references(container))


def _check_references(word: str, references: Iterable[_Reference]) -> None:
    targets: dict[str, str] = {}
    for ref in references:
        if not ref.object_id or not ref.name:
            raise InvalidSpec(f"malformed {word} reference")
        if not ref.has_target:
            raise InvalidSpec(f"malformed {word} reference, no target provided")
        if ref.file is None:
            continue
        file_name = ref.file.name
        if not file_name:
            raise InvalidSpec(f"malformed file {word} reference, invalid target file name provided")
        if file_name in targets:
            raise InvalidSpec(
                f"{word} references '{targets[file_name]}' and '{ref.name}' have a conflicting"
                f" target: '{file_name}'"
            )
        targets[file_name] = ref.name


def check_references_exist(
    spec: ServiceSpec, known_secrets: Iterable[Secret], known_configs: Iterable[Config]
) -> None:
    """Every reference names an existing object by ID, under its current name: SwarmKit's
    checkSecretExistence/checkConfigExistence (InvalidArgument, so a 400)."""
    container = spec.task_template.container_spec
    _check_exist("secret", _secret_references(container), {s.id: s.name for s in known_secrets})
    _check_exist("config", _config_references(container), {c.id: c.name for c in known_configs})


def _check_exist(word: str, references: Iterable[_Reference], names: Mapping[str, str]) -> None:
    missing = [ref.name for ref in references if names.get(ref.object_id) != ref.name]
    if missing:
        noun = word if len(missing) == 1 else f"{word}s"
        raise InvalidSpec(f"{noun} not found: {', '.join(missing)}")
