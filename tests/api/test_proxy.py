"""The pass-through to the real engine at /var/run/docker.sock."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from swarmlet.api.proxy import engine_path
from tests.api.fakes import require_engine

IMAGE = "swarmlet-test/busybox:latest"
LABEL = {"swarmlet-test": "api-proxy"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1.47/images/json", "/v1.41/images/json"),
        ("/v1.30/containers/json", "/v1.30/containers/json"),
        ("/v1.41/info", "/v1.41/info"),
        ("/images/json", "/images/json"),
        ("/v1.47", "/v1.41"),
    ],
)
def test_engine_path_lowers_the_version_to_the_engines(path, expected):
    assert engine_path(path, "1.41") == expected


async def test_images_are_listed_by_the_engine(client):
    require_engine()
    response = await client.get("/v1.47/images/json")
    assert response.status == 200
    assert response.headers["Api-Version"] == "1.47"
    tags = [tag for image in await response.json() for tag in image.get("RepoTags") or ()]
    assert IMAGE in tags


async def test_engine_errors_pass_through(client):
    require_engine()
    response = await client.get("/v1.47/containers/swarmlet-no-such-container/json")
    assert response.status == 404
    assert "No such container" in (await response.json())["message"]


async def create_container(client, **config) -> str:
    body = {"Image": IMAGE, "Labels": LABEL, **config}
    response = await client.post("/v1.47/containers/create", json=body)
    assert response.status == 201, await response.text()
    return str((await response.json())["Id"])


async def test_events_stream_as_they_happen(client):
    require_engine()
    query = {"type": ["container"], "event": ["create"], "label": ["swarmlet-test=api-proxy"]}
    events = await client.get("/v1.47/events", params={"filters": json.dumps(query)})
    assert events.status == 200
    container = await create_container(client, Cmd=["true"])
    try:
        line = await asyncio.wait_for(events.content.readline(), timeout=20)
        event = json.loads(line)
        assert event["Action"] == "create"
        assert event["Actor"]["ID"] == container
    finally:
        events.close()
        await client.delete(f"/v1.47/containers/{container}?force=1")


async def test_an_upgraded_attach_relays_raw_bytes_both_ways(served):
    require_engine()
    connector = aiohttp.UnixConnector(path=served)
    async with aiohttp.ClientSession(connector=connector, base_url="http://docker") as client:
        container = await create_container(
            client, Cmd=["cat"], OpenStdin=True, StdinOnce=True, AttachStdin=True
        )
        try:
            reader, writer = await asyncio.open_unix_connection(served)
            writer.write(
                f"POST /v1.47/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1"
                " HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=20)
            assert head.startswith(b"HTTP/1.1 101 ")
            assert b"Upgrade: tcp" in head
            started = await client.post(f"/v1.47/containers/{container}/start")
            assert started.status == 204
            writer.write(b"hello through the relay\n")
            writer.write_eof()  # the end of stdin: cat ends, and so does the stream
            output = await asyncio.wait_for(reader.read(), timeout=30)
            writer.close()
            # Without a TTY the engine multiplexes: an 8-byte header (stream 1) per frame.
            assert output[:1] == b"\x01"
            assert output.endswith(b"hello through the relay\n")
        finally:
            await client.delete(f"/v1.47/containers/{container}?force=1")
