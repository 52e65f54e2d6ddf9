"""The secrets and configs the agent keeps, and the files it plans for a task (no I/O)."""

from __future__ import annotations

import pytest

from swarmlet.agent.dependencies import Dependencies, plan_files, runtime_configs, uses_files
from swarmlet.errors import InvalidSpec, NotFound
from swarmlet.models import (
    Config,
    ConfigReference,
    ConfigSpec,
    FileTarget,
    RuntimeTarget,
    Secret,
    SecretReference,
    SecretSpec,
)

DB = Secret(id="sdb", spec=SecretSpec(name="db", data=b"hunter2"))
NGINX = Config(id="cnginx", spec=ConfigSpec(name="nginx.conf", data=b"server {}"))


def secret_ref(secret: Secret, name: str, **file: object) -> SecretReference:
    target = FileTarget.model_validate({"name": name, **file})
    return SecretReference(secret_id=secret.id, secret_name=secret.name, file=target)


def config_ref(config: Config, name: str, **file: object) -> ConfigReference:
    target = FileTarget.model_validate({"name": name, **file})
    return ConfigReference(config_id=config.id, config_name=config.name, file=target)


@pytest.fixture
def dependencies() -> Dependencies:
    dependencies = Dependencies()
    dependencies.replace([DB], [NGINX])
    return dependencies


def test_relative_names_are_under_run_secrets_and_the_root(make_task, dependencies):
    task = make_task(secrets=[secret_ref(DB, "db")], configs=[config_ref(NGINX, "nginx.conf")])
    secret, config = plan_files(task, dependencies)
    assert (secret.name, secret.target, secret.data) == ("secret-0", "/run/secrets/db", b"hunter2")
    assert (config.name, config.target, config.data) == ("config-0", "/nginx.conf", b"server {}")


def test_absolute_names_are_kept(make_task, dependencies):
    task = make_task(
        secrets=[secret_ref(DB, "/etc/db/password")],
        configs=[config_ref(NGINX, "/etc/nginx/nginx.conf")],
    )
    assert [f.target for f in plan_files(task, dependencies)] == [
        "/etc/db/password",
        "/etc/nginx/nginx.conf",
    ]


def test_owner_and_mode_are_the_references(make_task, dependencies):
    task = make_task(
        secrets=[
            secret_ref(DB, "db"),
            secret_ref(DB, "db-for-app", UID="1000", GID="33", mode=0o400),
        ]
    )
    default, chosen = plan_files(task, dependencies)
    # An API client that sends no owner and no mode gets the CLI's defaults.
    assert (default.uid, default.gid, default.mode) == (0, 0, 0o444)
    assert (chosen.uid, chosen.gid, chosen.mode) == (1000, 33, 0o400)
    # One secret may be mounted twice: each reference has a file of its own.
    assert (default.name, chosen.name) == ("secret-0", "secret-1")


def test_a_secret_that_did_not_arrive_is_not_found(make_task):
    task = make_task(secrets=[secret_ref(DB, "db")])
    with pytest.raises(NotFound, match=r"^secret sdb not found$"):
        plan_files(task, Dependencies())


def test_a_config_that_did_not_arrive_is_not_found(make_task, dependencies):
    dependencies.replace([DB], [])
    task = make_task(configs=[config_ref(NGINX, "nginx.conf")])
    with pytest.raises(NotFound, match=r"^config cnginx not found$"):
        plan_files(task, dependencies)


def test_an_owner_that_is_no_number_is_refused(make_task, dependencies):
    task = make_task(secrets=[secret_ref(DB, "db", UID="www-data")])
    with pytest.raises(InvalidSpec, match="secret db: UID 'www-data' is not a number"):
        plan_files(task, dependencies)


def test_a_runtime_config_is_not_mounted_and_need_not_arrive(make_task):
    credential = ConfigReference(config_id="ccred", config_name="cred", runtime=RuntimeTarget())
    task = make_task(configs=[credential])
    assert uses_files(task)
    assert plan_files(task, Dependencies()) == []
    assert runtime_configs(task) == ["cred"]


def test_a_task_without_references_uses_no_files(make_task, dependencies):
    task = make_task()
    assert not uses_files(task)
    assert plan_files(task, dependencies) == []


def test_each_assignment_replaces_the_set(dependencies):
    assert dependencies.secret(DB.id) == DB
    dependencies.replace([], [NGINX])
    assert dependencies.secret(DB.id) is None
    assert dependencies.config(NGINX.id) == NGINX


def test_nothing_shows_the_data(make_task, dependencies):
    assert "hunter2" not in repr(dependencies)
    (file,) = plan_files(make_task(secrets=[secret_ref(DB, "db")]), dependencies)
    assert "hunter2" not in repr(file)
