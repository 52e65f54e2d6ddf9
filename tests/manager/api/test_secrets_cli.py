"""The stock docker CLI's `secret`, `config` and `service --secret/--config` against the app."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from swarmlet.models import Config, Secret, Service

IMAGE = "swarmlet-test/busybox:latest"


async def test_secret_create_ls_inspect_rm(docker, served, store, tmp_path: Path):
    code, out, err = await docker(served, "secret", "create", "db_pass", "-", stdin=b"hunter2\n")
    assert code == 0, err
    db_pass = store.get(Secret, out.strip())
    assert db_pass.spec.data == b"hunter2\n"

    key_file = tmp_path / "api.key"
    key_file.write_bytes(b"\x00key\xff")
    code, out, err = await docker(
        served, "secret", "create", "--label", "tier=api", "api_key", str(key_file)
    )
    assert code == 0, err
    api_key = store.get(Secret, out.strip())
    assert api_key.spec.data == b"\x00key\xff"
    assert api_key.spec.labels == {"tier": "api"}

    code, out, err = await docker(served, "secret", "ls")
    assert code == 0, err
    rows = {line.split()[1]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {"db_pass", "api_key"}
    assert rows["db_pass"][0] == db_pass.id
    for args, expected in [
        ((), {db_pass.id, api_key.id}),
        (("--filter", "name=db"), {db_pass.id}),
        (("--filter", "label=tier=api"), {api_key.id}),
        (("--filter", f"id={api_key.id[:5]}"), {api_key.id}),
    ]:
        code, out, err = await docker(served, "secret", "ls", "-q", *args)
        assert code == 0, err
        assert set(out.split()) == expected, args

    code, out, err = await docker(served, "secret", "inspect", "db_pass", api_key.id[:6])
    assert code == 0, err
    inspected = json.loads(out)
    assert [s["ID"] for s in inspected] == [db_pass.id, api_key.id]
    assert all("Data" not in s["Spec"] for s in inspected)
    assert base64.b64encode(b"hunter2\n").decode() not in out
    code, out, err = await docker(served, "secret", "inspect", "--pretty", "api_key")
    assert code == 0, err
    assert "tier=api" in out

    code, out, err = await docker(served, "secret", "create", "db_pass", "-", stdin=b"again")
    assert code != 0
    assert "secret db_pass already exists" in err

    code, out, err = await docker(served, "secret", "rm", "db_pass", api_key.id)
    assert code == 0, err
    assert out.split() == ["db_pass", api_key.id]
    assert store.all(Secret) == []
    code, out, err = await docker(served, "secret", "inspect", "db_pass")
    assert code != 0
    assert "secret db_pass not found" in err


async def test_config_create_ls_inspect_rm(docker, served, store):
    data = b"listen 80;\n"
    code, out, err = await docker(served, "config", "create", "app.conf", "-", stdin=data)
    assert code == 0, err
    config = store.get(Config, out.strip())
    assert config.spec.data == data

    code, out, err = await docker(served, "config", "ls")
    assert code == 0, err
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [[config.id, "app.conf"]]

    code, out, err = await docker(served, "config", "inspect", "app.conf")
    assert code == 0, err
    [inspected] = json.loads(out)
    assert base64.b64decode(inspected["Spec"]["Data"]) == data
    code, out, err = await docker(served, "config", "inspect", "--pretty", config.id)
    assert code == 0, err
    assert "listen 80;" in out

    code, out, err = await docker(served, "config", "rm", "app.conf")
    assert code == 0, err
    assert store.all(Config) == []


async def test_service_secrets_and_configs_through_the_cli(docker, served, store):
    for kind, name in [("secret", "db_pass"), ("secret", "api_key"), ("config", "app_conf")]:
        code, out, err = await docker(served, kind, "create", name, "-", stdin=b"value")
        assert code == 0, err
    db_pass = store.by_name(Secret, "db_pass")
    app_conf = store.by_name(Config, "app_conf")
    assert db_pass is not None
    assert app_conf is not None

    code, out, err = await docker(
        served, "service", "create", "-d", "--no-resolve-image", "--name", "web",
        "--secret", "db_pass",
        "--secret", "source=db_pass,target=x,uid=1000,gid=1000,mode=0400",
        "--config", "source=app_conf,target=/etc/app.conf",
        IMAGE, "sleep", "1000",
    )  # fmt: skip
    assert code == 0, err
    service = store.get(Service, out.strip())
    container = service.spec.task_template.container_spec
    secrets = {ref.file.name: ref for ref in container.secrets or () if ref.file}
    assert set(secrets) == {"db_pass", "x"}
    assert {ref.secret_id for ref in secrets.values()} == {db_pass.id}
    file = secrets["x"].file
    assert file is not None
    assert (file.uid, file.gid, file.mode) == ("1000", "1000", 0o400)
    assert secrets["db_pass"].file is not None
    assert secrets["db_pass"].file.mode == 0o444
    [config] = container.configs or []
    assert (config.config_id, config.config_name) == (app_conf.id, "app_conf")
    assert config.file is not None
    assert config.file.name == "/etc/app.conf"

    code, out, err = await docker(served, "secret", "rm", "db_pass")
    assert code != 0
    assert "secret 'db_pass' is in use by the following service: web" in err
    code, out, err = await docker(served, "config", "rm", "app_conf")
    assert code != 0
    assert "config 'app_conf' is in use by the following service: web" in err

    code, out, err = await docker(
        served, "service", "update", "-d", "--secret-rm", "db_pass", "--secret-add", "api_key",
        "web",
    )  # fmt: skip
    assert code == 0, err
    updated = store.get(Service, service.id)
    names = [ref.secret_name for ref in updated.spec.task_template.container_spec.secrets or ()]
    assert names == ["api_key"]
    assert updated.spec_version.index == service.spec_version.index + 1

    code, out, err = await docker(served, "secret", "rm", "db_pass")
    assert code == 0, err
    assert store.by_name(Secret, "db_pass") is None
