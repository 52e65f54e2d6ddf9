"""SwarmKit's ``template`` package: a task's context, and what is expanded with it (pure).

``task_context`` is SwarmKit's ``NewContext``: ``.Service.ID/Name/Labels``, ``.Node.ID/
Hostname/Platform.Architecture/Platform.OS`` and ``.Task.ID/Name/Slot`` (``.Task.Name`` as
``naming.Task``, ``.Task.Slot`` the node ID when the task has no slot; the node's hostname and
platform only when its description is given). ``expand_container_spec`` is
``ExpandContainerSpec``: every ``Env`` value, each mount's ``Source``, ``Target``,
``VolumeOptions.Labels`` and ``VolumeOptions.DriverConfig.Options``, and the ``Hostname``,
with SwarmKit's wrapped errors (``expanding env failed: expanding env "A={{.X}}": template:
...``). ``expand_payload`` is ``ExpandSecretSpec``/``ExpandConfigSpec`` for a templated
secret's or config's data, with the functions ``secret``, ``config`` and ``env``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmlet.models import ContainerSpec, NodeDescription, Platform, Task, TaskSpec
from swarmlet.template.execute import new_template
from swarmlet.template.funcs import STRING, CallError, Func
from swarmlet.template.parse import TemplateError
from swarmlet.template.values import GoStruct, go_quote

# SwarmKit's template.go: every template is named so, and fails on a missing map key.
NAME = "expansion"
# The only template driver SwarmKit knows (Templating.Name).
GOLANG = "golang"

SERVICE_TYPE = "struct { ID string; Name string; Labels map[string]string }"
NODE_TYPE = "struct { ID string; Hostname string; Platform template.Platform }"
TASK_TYPE = "struct { ID string; Name string; Slot string }"
PLATFORM_TYPE = "template.Platform"
CONTEXT_TYPE = "template.Context"
PAYLOAD_CONTEXT_TYPE = "template.PayloadContext"
# PayloadContext's own fields, unexported: a template that names one is refused.
PAYLOAD_UNEXPORTED = frozenset({"t", "restrictedSecrets", "restrictedConfigs", "sensitive"})


def naming_task(task: Task) -> str:
    """SwarmKit's ``naming.Task`` of a task without an annotation name (SwarmKit's
    orchestrators give none): ``<service>.<slot or node ID>.<task ID>``."""
    slot = str(task.slot) if task.slot else (task.node_id or "")
    return f"{task.service_name}.{slot}.{task.id}"


def task_context(
    node: NodeDescription | None,
    task: Task,
    *,
    task_name: str | None = None,
    type_name: str = CONTEXT_TYPE,
) -> GoStruct:
    """SwarmKit's ``NewContext(node, task)``, as the pointer a template executes on."""
    platform = node.platform if node is not None else Platform()
    return GoStruct(
        type_name,
        {
            "Service": GoStruct(
                SERVICE_TYPE,
                {
                    "ID": task.service_id,
                    "Name": task.service_name,
                    "Labels": dict(task.service_labels or {}),
                },
            ),
            "Node": GoStruct(
                NODE_TYPE,
                {
                    "ID": task.node_id or "",
                    "Hostname": node.hostname if node is not None else "",
                    "Platform": GoStruct(
                        PLATFORM_TYPE, {"Architecture": platform.architecture, "OS": platform.os}
                    ),
                },
            ),
            "Task": GoStruct(
                TASK_TYPE,
                {
                    "ID": task.id,
                    "Name": task_name if task_name is not None else naming_task(task),
                    "Slot": str(task.slot) if task.slot else (task.node_id or ""),
                },
            ),
        },
        unexported=PAYLOAD_UNEXPORTED if type_name == PAYLOAD_CONTEXT_TYPE else frozenset(),
        pointer=True,
    )


def expand(context: GoStruct, text: str, functions: Mapping[str, Func] | None = None) -> str:
    """``Context.Expand``: ``text`` as a template executed on ``context``."""
    return new_template(NAME, text, functions).execute(context)


# -- the container spec ---------------------------------------------------------------------


def expand_container_spec(
    node: NodeDescription | None, task: Task, *, task_name: str | None = None
) -> ContainerSpec:
    """``ExpandContainerSpec``: the task's container spec with its templates expanded.
    Raises TemplateError with SwarmKit's message."""
    spec = task.spec.container_spec
    if not _may_expand(spec):
        return spec
    context = task_context(node, task, task_name=task_name)
    try:
        env = _expand_env(context, spec.env)
    except TemplateError as exc:
        raise TemplateError(f"expanding env failed: {exc.message}") from None
    try:
        mounts = _expand_mounts(context, spec.mounts)
    except TemplateError as exc:
        raise TemplateError(f"expanding mounts failed: {exc.message}") from None
    try:
        hostname = expand(context, spec.hostname) if spec.hostname else spec.hostname
    except TemplateError as exc:
        raise TemplateError(f"expanding hostname failed: {exc.message}") from None
    return spec.replace(env=env, mounts=mounts, hostname=hostname)


def expand_task(node: NodeDescription | None, task: Task) -> Task:
    """The task as its node runs it: its container spec expanded (SwarmKit's executor does
    it as it makes the task's controller). Raises TemplateError."""
    container = expand_container_spec(node, task)
    if container is task.spec.container_spec:
        return task
    return task.replace(spec=task.spec.replace(container_spec=container))


def _may_expand(spec: ContainerSpec) -> bool:
    """Whether expanding could change the spec: a template's actions start with ``{{``, and
    text without them is itself. (Its mounts are not looked into.) Most specs have none, and
    an agent expands each of its tasks' as it starts it."""
    return bool(spec.mounts) or any(
        "{{" in text for text in (*(spec.env or ()), spec.hostname or "")
    )


# The node and task SwarmKit's controlapi expands a spec with at create and update.
DUMMY_NODE = NodeDescription(
    hostname="nodeHostname", platform=Platform(os="os", architecture="architecture")
)


def validate_container_spec(spec: TaskSpec) -> None:
    """SwarmKit's ``validateContainerSpec`` templating check: the spec expanded for a dummy
    node and task (best effort, as there). Raises TemplateError."""
    dummy = Task(
        id="",
        spec=spec,
        service_id="serviceid",
        service_name="servicename",
        slot=1,
        node_id="nodeid",
    )
    expand_container_spec(DUMMY_NODE, dummy, task_name="taskname")


def _expand_env(context: GoStruct, values: list[str] | None) -> list[str] | None:
    if not values:
        return values
    result = []
    for value in values:
        name, equals, text = value.partition("=")
        if not equals:
            result.append(value)
            continue
        try:
            result.append(f"{name}={expand(context, text)}")
        except TemplateError as exc:
            raise TemplateError(f"expanding env {go_quote(value)}: {exc.message}") from None
    return result


def _expand_mounts(
    context: GoStruct, mounts: list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    if not mounts:
        return mounts
    expanded = []
    for original in mounts:
        mount = dict(original)
        for key, word in (("Source", "source"), ("Target", "target")):
            text = mount.get(key)
            if not isinstance(text, str) or not text:
                continue
            try:
                mount[key] = expand(context, text)
            except TemplateError as exc:
                raise TemplateError(
                    f"expanding mount {word} {go_quote(text)}: {exc.message}"
                ) from None
        options = mount.get("VolumeOptions")
        if isinstance(options, dict):
            options = dict(options)
            try:
                options["Labels"] = _expand_map(context, options.get("Labels"))
            except TemplateError as exc:
                raise TemplateError(f"expanding volume labels: {exc.message}") from None
            driver = options.get("DriverConfig")
            if isinstance(driver, dict):
                try:
                    driver = {**driver, "Options": _expand_map(context, driver.get("Options"))}
                except TemplateError as exc:
                    raise TemplateError(f"expanding volume driver config: {exc.message}") from None
                options["DriverConfig"] = driver
            mount["VolumeOptions"] = {k: v for k, v in options.items() if v is not None}
        expanded.append(mount)
    return expanded


def _expand_map(context: GoStruct, values: Any) -> dict[str, str] | None:
    if not isinstance(values, dict):
        return None
    result: dict[str, str] = {}
    for key, value in values.items():
        try:
            result[key] = expand(context, value)
        except TemplateError as exc:
            entry = f"{go_quote(key)}={go_quote(value)}"
            raise TemplateError(f"expanding map entry {entry}: {exc.message}") from None
    return result


# -- configs' and secrets' payloads ---------------------------------------------------------


@dataclass
class Payloads:
    """What a payload's ``secret`` and ``config`` functions read: the task's secrets' and
    configs' data by ID (as delivered, never expanded), and whether a secret was read."""

    secrets: Callable[[str], bytes | None]
    configs: Callable[[str], bytes | None]
    sensitive: bool = field(default=False)


def expand_payload(data: bytes, templating: str, task: Task, payloads: Payloads) -> bytes:
    """``ExpandSecretSpec``/``ExpandConfigSpec``: the data of a secret or config whose
    ``Templating.Name`` is ``templating``, expanded for ``task`` (already expanded itself, as
    SwarmKit's executor has it). The node is SwarmKit's nil: only ``.Node.ID`` is set. Raises
    TemplateError (``unrecognized template type`` for a driver other than golang)."""
    if templating != GOLANG:
        raise TemplateError("unrecognized template type")
    context = task_context(None, task, type_name=PAYLOAD_CONTEXT_TYPE)
    container = task.spec.container_spec

    def secret(target: str) -> str:
        for reference in container.secrets or ():
            if reference.file is not None and reference.file.name == target:
                value = payloads.secrets(reference.secret_id)
                if value is None:
                    raise CallError(f"secret {reference.secret_id} not found")
                payloads.sensitive = True
                return value.decode(errors="surrogateescape")
        raise CallError(f"secret target {target} not found")

    def config(target: str) -> str:
        for reference in container.configs or ():
            if reference.file is not None and reference.file.name == target:
                value = payloads.configs(reference.config_id)
                if value is None:
                    raise CallError(f"config {reference.config_id} not found")
                return value.decode(errors="surrogateescape")
        raise CallError(f"config target {target} not found")

    def env(variable: str) -> str:
        for entry in container.env or ():
            name, equals, value = entry.partition("=")
            if equals and name == variable:
                return value
        return ""

    functions = {
        "secret": Func(secret, (STRING,)),
        "config": Func(config, (STRING,)),
        "env": Func(env, (STRING,)),
    }
    return expand(context, data.decode(errors="surrogateescape"), functions).encode(
        errors="surrogateescape"
    )
