"""The secrets and configs this node was sent, and the files a task gets of them (pure).

With every assignment set the dispatcher sends exactly the secrets and configs that the node's
tasks use, data included. ``Dependencies`` keeps them in memory only: nothing here writes them
to the node's disk or shows their data (not even a repr). ``plan_files`` decides, without I/O,
the files of a task's container: for each reference with a ``File`` target, the object's data
with the reference's owner and mode, to be bind-mounted read-only at its target. The driver
that writes them on a tmpfs is ``swarmlet.agent.task_files``.

Targets are Swarm's: a relative secret name is under ``/run/secrets/``, a relative config name
under ``/`` (moby's getSecretTargetPath and getConfigTargetPath). Owners default to 0 and the
mode to 0444 (the CLI's default; an API client that sends no mode sends 0). A config with a
``Runtime`` target is a Windows credential spec: Linux has no use for it, so it is not mounted
and need not have arrived (moby skips it the same way).

A secret or config with ``Templating`` is expanded per task (``swarmlet.template.expand``,
SwarmKit's templated getters): its data is a Go template run on the task's context (the node's
ID, but not its hostname nor platform, as moby gives no node), with ``secret "<target>"`` and
``config "<target>"`` (the data of another of the task's files, as delivered) and ``env
"VAR"`` (the task's expanded Env). One that does not expand fails the task with moby's words:
``unable to get secret from secret store: failed to expand templated secret <id>: ...``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from swarmlet.errors import InvalidSpec, NotFound
from swarmlet.models import Config, FileTarget, Secret, Task
from swarmlet.template import TemplateError
from swarmlet.template.expand import Payloads, expand_payload

SECRETS_TARGET = "/run/secrets"
CONFIGS_TARGET = "/"
DEFAULT_MODE = 0o444


@dataclass(frozen=True)
class TaskFile:
    """One file of a task's container. ``name`` is its name in the task's directory on the
    host: made of the reference's position only, never of a name the manager chose."""

    name: str
    target: str  # the absolute path in the container
    uid: int
    gid: int
    mode: int
    data: bytes = field(repr=False)


class Dependencies:
    """The secrets and configs of the last assignment set, by ID (in memory only)."""

    def __init__(self) -> None:
        self._secrets: dict[str, Secret] = {}
        self._configs: dict[str, Config] = {}

    def replace(self, secrets: Iterable[Secret], configs: Iterable[Config]) -> None:
        """The full set, as each assignment set carries it: what is not in it is forgotten."""
        self._secrets = {secret.id: secret for secret in secrets}
        self._configs = {config.id: config for config in configs}

    def secret(self, secret_id: str) -> Secret | None:
        return self._secrets.get(secret_id)

    def config(self, config_id: str) -> Config | None:
        return self._configs.get(config_id)

    def secret_data(self, secret_id: str) -> bytes | None:
        """A secret's data as delivered (a template's ``secret`` reads it unexpanded)."""
        secret = self._secrets.get(secret_id)
        return None if secret is None else secret.spec.data or b""

    def config_data(self, config_id: str) -> bytes | None:
        config = self._configs.get(config_id)
        return None if config is None else config.spec.data or b""

    def __repr__(self) -> str:
        return f"<Dependencies: {len(self._secrets)} secrets, {len(self._configs)} configs>"


def uses_files(task: Task) -> bool:
    """Whether the task references any secret or config (a runtime config included: its
    controller then checks, and ignores it)."""
    container = task.spec.container_spec
    return bool(container.secrets or container.configs)


def runtime_configs(task: Task) -> list[str]:
    """The names of the configs the task uses as runtime targets (not mounted)."""
    return [ref.config_name for ref in task.spec.container_spec.configs or () if ref.runtime]


def plan_files(task: Task, dependencies: Dependencies) -> list[TaskFile]:
    """The files of the task's container. Raises NotFound for a secret or config that did not
    arrive (SwarmKit's words: ``secret <id> not found``), InvalidSpec for a bad owner."""
    container = task.spec.container_spec
    files: list[TaskFile] = []
    payloads = Payloads(secrets=dependencies.secret_data, configs=dependencies.config_data)
    for index, secret_ref in enumerate(container.secrets or ()):
        secret = dependencies.secret(secret_ref.secret_id)
        if secret is None:
            raise NotFound(f"secret {secret_ref.secret_id} not found")
        if secret_ref.file is None:
            continue  # refused by the API: SwarmKit's agent skips it too
        what = f"secret {secret_ref.secret_name or secret.name}"
        target = _target(SECRETS_TARGET, secret_ref.file.name)
        data = _expanded("secret", secret, task, payloads)
        files.append(_file(f"secret-{index}", target, secret_ref.file, data, what))
    for index, config_ref in enumerate(container.configs or ()):
        if config_ref.file is None:
            continue  # a runtime target: see the module's docstring
        config = dependencies.config(config_ref.config_id)
        if config is None:
            raise NotFound(f"config {config_ref.config_id} not found")
        what = f"config {config_ref.config_name or config.name}"
        target = _target(CONFIGS_TARGET, config_ref.file.name)
        data = _expanded("config", config, task, payloads)
        files.append(_file(f"config-{index}", target, config_ref.file, data, what))
    return files


def _expanded(word: str, obj: Secret | Config, task: Task, payloads: Payloads) -> bytes | None:
    """The data a task's file gets: a templated secret's or config's expanded for the task."""
    data, templating = obj.spec.data, obj.spec.templating
    if templating is None or data is None:
        return data
    try:
        return expand_payload(data, templating.name, task, payloads)
    except TemplateError as exc:
        raise TemplateError(
            f"unable to get {word} from {word} store: failed to expand templated {word}"
            f" {obj.id}: {exc.message}"
        ) from None


def _target(directory: str, name: str) -> str:
    return posixpath.normpath(posixpath.join(directory, name))


def _file(name: str, target: str, file: FileTarget, data: bytes | None, what: str) -> TaskFile:
    return TaskFile(
        name=name,
        target=target,
        uid=_owner(file.uid, "UID", what),
        gid=_owner(file.gid, "GID", what),
        mode=(file.mode & 0o7777) or DEFAULT_MODE,
        data=data or b"",
    )


def _owner(value: str, which: str, what: str) -> int:
    if not value:
        return 0
    if not value.isdigit():
        raise InvalidSpec(f"{what}: {which} {value!r} is not a number")
    return int(value)
