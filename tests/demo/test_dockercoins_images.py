"""dockercoins' images (scripts/images/dockercoins.sh) on the machine's engine: what each
image is, that each image's interpreter has what the apps need, and the five run together on
a bridge network (names resolved by the engine's DNS, as a swarm's are), each answering on a
port published on 127.0.0.1, until webui shows hashes and coins."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from swarmlet.agent.engine import EngineClient
from tests.conftest import TEST_LABEL

BUILD = Path(__file__).resolve().parents[2] / "scripts" / "images" / "dockercoins.sh"
APPS = ("rng", "hasher", "worker", "webui")
LOOPBACK = "127.0.0.1"
# What the apps import, and a codec the interpreter loads by name (idna, for host names).
IMPORTS = "import hashlib, http.client, http.server, json, logging, socket, time"


async def cli(*args: str) -> str:
    """The stock docker CLI against the machine's engine; what it printed."""
    env = {**os.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"}
    env.pop("DOCKER_CONTEXT", None)
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"docker {' '.join(args)}: {err.decode()}"
    return out.decode().strip()


async def eventually(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``predicate`` holds (bounded: this is not a measure of speed)."""
    deadline = time.monotonic() + 60
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within 60 s: {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def images(docker: EngineClient) -> None:
    """The images, built from the current sources (nothing to do when they are)."""
    process = await asyncio.create_subprocess_exec(
        str(BUILD), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()


@pytest.fixture
async def network(test_labels: dict[str, str]) -> AsyncIterator[str]:
    """A bridge network of the test's own, removed after it with the test's containers."""
    label = f"{TEST_LABEL}={test_labels[TEST_LABEL]}"
    name = f"swltest-dockercoins-{test_labels[TEST_LABEL][:12]}"
    await cli("network", "create", "--label", label, name)
    try:
        yield name
    finally:
        containers = await cli("ps", "-aq", "--filter", f"label={label}")
        if containers:
            await cli("rm", "-f", *containers.split())
        await cli("network", "rm", name)


async def test_the_images_run_their_app_from_a_shared_layer(images, docker):
    layers = set()
    for app in APPS:
        image = await docker.inspect_image(f"dockercoins_{app}:latest")
        config = image["Config"]
        assert config["Cmd"] == ["python3", f"{app}.py"]
        assert config["WorkingDir"] == "/app"
        assert config.get("ExposedPorts") == (None if app == "worker" else {"80/tcp": {}})
        layers.add(tuple(image["RootFS"]["Layers"]))
    # One root holds the interpreter and the four apps: the four images are one layer.
    assert len(layers) == 1
    redis = await docker.inspect_image("redis:latest")
    assert redis["Config"]["Cmd"] == ["redis-server", "/etc/redis/redis.conf"]
    assert redis["Config"]["ExposedPorts"] == {"6379/tcp": {}}


async def test_each_image_has_what_its_app_needs(images, test_labels):
    label = f"{TEST_LABEL}={test_labels[TEST_LABEL]}"
    script = f"{IMPORTS}; print(hashlib.sha256(b'abc').hexdigest(), 'rng'.encode('idna'))"
    for app in APPS:
        out = await cli(
            "run", "--rm", "--label", label, "--network", "none", f"dockercoins_{app}",
            "python3", "-c", script,
        )  # fmt: skip
        assert out == f"{hashlib.sha256(b'abc').hexdigest()} b'rng'"
    out = await cli("run", "--rm", "--label", label, "redis", "redis-server", "--version")
    assert out.startswith("Redis server v=")


async def run(network: str, label: str, image: str, alias: str, port: int | None) -> str:
    """Start ``image`` on ``network`` as ``alias``; its port published on 127.0.0.1, if any."""
    publish = ["-p", f"{LOOPBACK}::{port}"] if port else []
    args = ["--label", label, "--network", network, "--network-alias", alias, *publish]
    return await cli("run", "-d", *args, image)


async def published(container: str, port: int) -> int:
    """The loopback port the engine chose for the container's ``port``."""
    return int((await cli("port", container, f"{port}/tcp")).splitlines()[0].rpartition(":")[2])


async def test_the_five_images_mine_coins_together(images, network, test_labels):
    label = f"{TEST_LABEL}={test_labels[TEST_LABEL]}"
    redis = await run(network, label, "redis", "redis", 6379)
    rng = await run(network, label, "dockercoins_rng", "rng", 80)
    hasher = await run(network, label, "dockercoins_hasher", "hasher", 80)
    worker = await run(network, label, "dockercoins_worker", "worker", None)
    webui = await run(network, label, "dockercoins_webui", "webui", 80)
    ports = {
        "redis": await published(redis, 6379),
        "rng": await published(rng, 80),
        "hasher": await published(hasher, 80),
        "webui": await published(webui, 80),
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        def url(app: str, path: str) -> str:
            return f"http://{LOOPBACK}:{ports[app]}{path}"

        async def answers(app: str) -> bool:
            try:
                async with http.get(url(app, "/")) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False  # the app is still starting

        for app in ("rng", "hasher", "webui"):
            await eventually(lambda app=app: answers(app), f"{app} answering on its port")

        async with http.get(url("rng", "/32")) as response:
            assert response.status == 200
            assert len(await response.read()) == 32
        body = os.urandom(32)
        async with http.post(url("hasher", "/"), data=body) as response:
            assert await response.text() == hashlib.sha256(body).hexdigest()
        async with http.get(url("webui", "/")) as response:
            assert "<canvas" in await response.text()

        reader, writer = await asyncio.open_connection(LOOPBACK, ports["redis"])
        writer.write(b"*1\r\n$4\r\nPING\r\n")
        assert await reader.readline() == b"+PONG\r\n"
        writer.close()
        await writer.wait_closed()

        # The worker, found by name, mines: webui's counts grow.
        async def stats() -> dict[str, int]:
            async with http.get(url("webui", "/json")) as response:
                assert response.status == 200
                result: dict[str, int] = await response.json()
                return result

        first = await stats()

        async def grown() -> bool:
            now = await stats()
            return now["hashes"] > first["hashes"] and now["coins"] > first["coins"]

        await eventually(grown, "webui showing more hashes and coins")
    assert await cli("inspect", "-f", "{{.State.Running}}", worker) == "true"
