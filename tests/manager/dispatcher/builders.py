"""Secrets and the tasks that use them, for the dispatcher's tests."""

from __future__ import annotations

from swarmlet.models import (
    Config,
    ConfigReference,
    ContainerSpec,
    FileTarget,
    Secret,
    SecretReference,
    SecretSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)

DB = Secret(id="sdb", spec=SecretSpec(name="db", data=b"hunter2"))


def task(
    task_id: str,
    node_id: str | None,
    secrets: tuple[Secret, ...] = (),
    configs: tuple[Config, ...] = (),
    state: TaskState = TaskState.ASSIGNED,
) -> Task:
    """A busybox task of service s1 with each secret and config as a file named after it."""
    container = ContainerSpec(
        image="busybox",
        secrets=[
            SecretReference(secret_id=s.id, secret_name=s.name, file=FileTarget(name=s.name))
            for s in secrets
        ],
        configs=[
            ConfigReference(config_id=c.id, config_name=c.name, file=FileTarget(name=c.name))
            for c in configs
        ],
    )
    return Task(
        id=task_id,
        service_id="s1",
        node_id=node_id,
        spec=TaskSpec(container_spec=container),
        status=TaskStatus(state=state),
    )
