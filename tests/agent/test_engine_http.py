"""The engine client's protocol handling, against a small HTTP server posing as an engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from swarmlet.agent.engine import MAX_API_VERSION, EngineClient
from swarmlet.errors import EngineError, NotFound


class PosingEngine:
    """Answers like an engine of ``api_version`` and records the paths it was asked for."""

    def __init__(self, api_version: str | None) -> None:
        self.api_version = api_version
        self.paths: list[str] = []
        self.pull_stream: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path_qs)
        headers = {"Api-Version": self.api_version} if self.api_version else {}
        path = request.path
        if path == "/_ping":
            return web.Response(text="OK", headers=headers)
        if path.endswith("/info"):
            return web.json_response({"NCPU": 1})
        if path.endswith("/images/create"):
            response = web.StreamResponse()
            await response.prepare(request)
            for event in self.pull_stream:
                await response.write(json.dumps(event).encode() + b"\r\n")
            await response.write_eof()
            return response
        if path.endswith("/containers/missing/json"):
            return web.json_response({"message": "No such container: missing"}, status=404)
        if path.endswith("/containers/broken/start"):
            return web.json_response({"message": "OCI runtime error"}, status=500)
        if path.endswith("/containers/plain/start"):
            return web.Response(text="not json", status=500)
        if path.endswith("/containers/done/start"):
            return web.Response(status=304)
        return web.json_response({"message": "page not found"}, status=404)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[PosingEngine], Awaitable[EngineClient]]]:
    runners: list[web.AppRunner] = []

    async def serve(posing: PosingEngine) -> EngineClient:
        runner = web.AppRunner(posing.app())
        await runner.setup()
        path = tmp_path / f"engine{len(runners)}.sock"
        await web.UnixSite(runner, str(path)).start()
        runners.append(runner)
        return EngineClient(f"unix://{path}")

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_uses_the_engines_lower_version(serve):
    posing = PosingEngine("1.40")
    async with await serve(posing) as engine:
        assert (await engine.info())["NCPU"] == 1
        assert engine.api_version == "1.40"
    assert posing.paths == ["/_ping", "/v1.40/info"]


async def test_caps_a_newer_engine_at_its_own_version(serve):
    async with await serve(PosingEngine("9.99")) as engine:
        await engine.info()
        assert engine.api_version == MAX_API_VERSION


async def test_an_engine_that_does_not_say_gets_our_version(serve):
    async with await serve(PosingEngine(None)) as engine:
        await engine.info()
        assert engine.api_version == MAX_API_VERSION


async def test_an_error_in_the_pull_stream_is_an_error(serve):
    posing = PosingEngine("1.41")
    posing.pull_stream = [
        {"status": "Pulling from library/app", "id": "v1"},
        {"error": "manifest for app:v1 not found", "errorDetail": {"message": "…"}},
    ]
    async with await serve(posing) as engine:
        with pytest.raises(EngineError, match="manifest for app:v1 not found"):
            await engine.pull_image("registry.local:5000/app:v1")
    assert posing.paths[-1] == "/v1.41/images/create?fromImage=registry.local:5000/app&tag=v1"


async def test_a_clean_pull_stream_is_a_pull(serve):
    posing = PosingEngine("1.41")
    posing.pull_stream = [{"status": "Pulling"}, {"status": "Downloaded newer image"}]
    async with await serve(posing) as engine:
        await engine.pull_image("app")
    assert posing.paths[-1] == "/v1.41/images/create?fromImage=app&tag=latest"


async def test_errors_carry_the_engines_message_and_status(serve):
    async with await serve(PosingEngine("1.41")) as engine:
        with pytest.raises(NotFound, match="No such container: missing"):
            await engine.inspect_container("missing")
        with pytest.raises(EngineError) as caught:
            await engine.start_container("broken")
        assert (caught.value.message, caught.value.status) == ("OCI runtime error", 500)
        with pytest.raises(EngineError, match="not json"):
            await engine.start_container("plain")
        await engine.start_container("done")  # 304: already started
