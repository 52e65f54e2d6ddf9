"""The engine client against the machine's real engine (see conftest.py for when it skips)."""

from __future__ import annotations

import asyncio

import pytest

from swarmlet.agent.engine import MAX_API_VERSION, EngineClient, split_reference
from swarmlet.errors import EngineError, NotFound
from swarmlet.ids import new_id

TEST_IMAGE = "swarmlet-test/busybox:latest"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("busybox:1.36", ("busybox", "1.36")),
        ("registry:5000/team/app", ("registry:5000/team/app", "latest")),
        ("registry:5000/team/app:v2", ("registry:5000/team/app", "v2")),
        ("busybox@sha256:abc", ("busybox@sha256:abc", "")),
    ],
)
def test_split_reference(ref, expected):
    assert split_reference(ref) == expected


def test_rejects_unknown_schemes():
    with pytest.raises(ValueError, match="unix:// or tcp://"):
        EngineClient("ssh://host")


async def test_unreachable_engine_is_an_engine_error_with_status_0(tmp_path):
    async with EngineClient(f"unix://{tmp_path}/nothing.sock") as engine:
        with pytest.raises(EngineError) as caught:
            await engine.info()
    assert caught.value.status == 0


async def test_negotiates_the_api_version(docker):
    theirs = await docker.ping()
    await docker.info()
    expected = min(theirs, MAX_API_VERSION, key=lambda v: tuple(map(int, v.split("."))))
    assert docker.api_version == expected


async def test_info_and_version(docker):
    info = await docker.info()
    assert info["NCPU"] > 0
    version = await docker.version()
    assert version["ApiVersion"]


async def test_image_inspect_and_missing_images(docker):
    image = await docker.inspect_image(TEST_IMAGE)
    assert TEST_IMAGE in image["RepoTags"]
    with pytest.raises(NotFound):
        await docker.inspect_image("swarmlet-test/nope:1")
    with pytest.raises((EngineError, NotFound)):
        await docker.pull_image("swarmlet-test/nope:1")


async def test_container_lifecycle(docker, test_labels):
    name = f"swltest-{new_id()}"
    config = {"Image": TEST_IMAGE, "Cmd": ["sh", "-c", "exit 3"], "Labels": test_labels}
    container_id = await docker.create_container(name, config, {"Init": True})
    created = await docker.inspect_container(name)
    assert created.id == container_id
    assert created.state == "created"
    assert created.labels == test_labels
    [listed] = await docker.list_containers(test_labels)
    assert (listed.id, listed.name) == (container_id, name)

    with pytest.raises(EngineError) as conflict:
        await docker.create_container(name, config, {})
    assert conflict.value.status == 409

    await docker.start_container(container_id)
    assert await docker.wait_container(container_id) == 3
    exited = await docker.inspect_container(container_id)
    assert exited.exited
    assert exited.exit_code == 3

    await docker.remove_container(container_id)
    with pytest.raises(NotFound):
        await docker.inspect_container(container_id)
    with pytest.raises(NotFound):
        await docker.remove_container(container_id)


async def test_stop_and_kill(docker, test_labels):
    config = {
        "Image": TEST_IMAGE,
        "Cmd": ["sleep", "3600"],
        "Labels": test_labels,
        "StopSignal": "SIGTERM",
    }
    stopped = await docker.create_container(f"swltest-{new_id()}", config, {})
    killed = await docker.create_container(f"swltest-{new_id()}", config, {})
    for container in (stopped, killed):
        await docker.start_container(container)
    loop = asyncio.get_running_loop()
    began = loop.time()
    # sleep as PID 1 ignores SIGTERM: SIGKILL after the grace period.
    await docker.stop_container(stopped, grace=1)
    assert loop.time() - began < 8
    assert (await docker.inspect_container(stopped)).exit_code == 137
    await docker.stop_container(stopped, grace=1)  # already stopped: fine

    await docker.kill_container(killed, "SIGKILL")
    assert await docker.wait_container(killed) == 137
