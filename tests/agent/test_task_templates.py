"""Templates on the agent, with the fake engine: a task's container gets its spec expanded for
its node, a templated secret or config is written expanded for the task, and a template that
does not expand on the node rejects the task with Swarm's words."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path

import pytest

from swarmlet.agent.dependencies import Dependencies, plan_files
from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.agent.task_files import TaskFiles, files_dir
from swarmlet.clock import FakeClock
from swarmlet.errors import InvalidSpec
from swarmlet.models import (
    Config,
    ConfigReference,
    ConfigSpec,
    FileTarget,
    NodeDescription,
    Platform,
    Secret,
    SecretReference,
    SecretSpec,
    TaskState,
)
from swarmlet.models.secret import Driver
from tests.agent.conftest import Run, running
from tests.agent.mounts import FakeMounts

S = TaskState
NODE = NodeDescription(hostname="host-7", platform=Platform(architecture="aarch64", os="linux"))
GOLANG = Driver(name="golang")
PASSWORD = Secret(id="spw", spec=SecretSpec(name="pw", data=b"hunter2"))
GREETING = Secret(
    id="sgreet",
    spec=SecretSpec(
        name="greeting", data=b'{{.Task.Slot}}:{{secret "pw"}}:{{env "WHO"}}', templating=GOLANG
    ),
)
APP = Config(
    id="capp",
    spec=ConfigSpec(
        name="app.conf",
        data=b"name={{.Service.Name}} slot={{.Task.Slot}} node={{.Node.ID}}"
        b" host=[{{.Node.Hostname}}]",
        templating=GOLANG,
    ),
)
BROKEN = Config(id="cbad", spec=ConfigSpec(name="bad", data=b"{{.Nope}}", templating=GOLANG))
UNKNOWN = Config(
    id="cother", spec=ConfigSpec(name="other", data=b"x", templating=Driver(name="mustache"))
)
PW_REF = SecretReference(secret_id=PASSWORD.id, secret_name="pw", file=FileTarget(name="pw"))
GREETING_REF = SecretReference(
    secret_id=GREETING.id, secret_name="greeting", file=FileTarget(name="greeting")
)
APP_REF = ConfigReference(config_id=APP.id, config_name="app.conf", file=FileTarget(name="/app"))


@pytest.fixture
def engine(clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(clock)
    engine.add_image("busybox")
    return engine


@pytest.fixture
def dependencies() -> Dependencies:
    dependencies = Dependencies()
    dependencies.replace([PASSWORD, GREETING], [APP, BROKEN, UNKNOWN])
    return dependencies


@pytest.fixture
def files(tmp_path: Path, dependencies: Dependencies) -> TaskFiles:
    return TaskFiles(files_dir("node1", tmp_path), dependencies, FakeMounts())


@pytest.fixture
def start(
    engine: FakeEngine, clock: FakeClock, files: TaskFiles
) -> Callable[..., AbstractAsyncContextManager[Run]]:
    return partial(running, engine=engine, clock=clock, files=files, node=NODE)


async def test_the_container_gets_its_spec_expanded_for_its_node(make_task, start, engine, pump):
    task = make_task(
        slot=4,
        hostname="{{.Service.Name}}-{{.Task.Slot}}",
        env=["WHERE={{.Node.Hostname}}", "ARCH={{.Node.Platform.Architecture}}", "PLAIN=x"],
        mounts=[{"Type": "volume", "Source": "data-{{.Task.Slot}}", "Target": "/data"}],
    )
    async with start(task) as run:
        await pump()
        assert run.last.state == S.RUNNING
    container = engine.container(run.controller.container_name)
    assert container.config["Hostname"] == "web-4"
    assert container.config["Env"][:3] == ["WHERE=host-7", "ARCH=aarch64", "PLAIN=x"]
    assert container.host_config["Mounts"][0]["Source"] == "data-4"


async def test_a_template_that_does_not_expand_on_the_node_rejects_the_task(
    make_task, start, engine, pump
):
    # Refused at create in Swarm (the dummy service has no labels either); a task made before,
    # or by another client, is rejected where it was to run.
    async with start(make_task(hostname="{{.Service.Labels.tier}}")) as run:
        await pump()
    assert run.steps == [(S.REJECTED, "resolving controller failed")]
    assert run.last.err == (
        'expanding hostname failed: template: expansion:1:10: executing "expansion" at'
        ' <.Service.Labels.tier>: map has no entry for key "tier"'
    )
    assert engine.containers == {}


async def test_templated_secrets_and_configs_are_written_for_each_task(
    make_task, start, files, pump
):
    for slot in (1, 2):
        task = make_task(
            slot=slot,
            env=["WHO=task-{{.Task.Slot}}"],
            secrets=[PW_REF, GREETING_REF],
            configs=[APP_REF],
        )
        async with start(task) as run:
            await pump()
            assert run.last.state == S.RUNNING
            task_dir = files.directory / task.id
            assert (task_dir / "secret-0").read_bytes() == b"hunter2"
            # env reads the task's Env expanded; secret reads the other secret as delivered.
            assert (task_dir / "secret-1").read_bytes() == f"{slot}:hunter2:task-{slot}".encode()
            # No hostname in a payload: moby gives its templates no node, only its ID.
            assert (task_dir / "config-0").read_bytes() == (
                f"name=web slot={slot} node=node1 host=[]".encode()
            )


@pytest.mark.parametrize(
    ("config", "err"),
    [
        (
            BROKEN,
            "unable to get config from config store: failed to expand templated config cbad:"
            ' template: expansion:1:2: executing "expansion" at <.Nope>: can\'t evaluate field'
            " Nope in type *template.PayloadContext",
        ),
        (
            UNKNOWN,
            "unable to get config from config store: failed to expand templated config cother:"
            " unrecognized template type",
        ),
    ],
)
async def test_a_payload_that_does_not_expand_rejects_the_task(
    make_task, start, engine, pump, config, err
):
    reference = ConfigReference(
        config_id=config.id, config_name=config.name, file=FileTarget(name="/c")
    )
    async with start(make_task(configs=[reference])) as run:
        await pump()
    assert (run.last.state, run.last.err) == (S.REJECTED, err)
    assert engine.containers == {}


def test_a_secret_read_by_a_missing_target_names_it(make_task, dependencies):
    missing = Secret(
        id="smiss", spec=SecretSpec(name="m", data=b'{{secret "nope"}}', templating=GOLANG)
    )
    dependencies.replace([missing], [])
    task = make_task(
        secrets=[SecretReference(secret_id="smiss", secret_name="m", file=FileTarget(name="m"))]
    )
    with pytest.raises(InvalidSpec) as failure:
        plan_files(task, dependencies)
    assert failure.value.message == (
        "unable to get secret from secret store: failed to expand templated secret smiss:"
        ' template: expansion:1:2: executing "expansion" at <secret "nope">: error calling'
        " secret: secret target nope not found"
    )
