"""A manager and simulated nodes in the test's own event loop, driven through the Engine API."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from swarmlet.aio import cancel_and_wait

# Generous: a step on a loaded 2-core machine may be slow; nothing asserts on durations.
STEP_TIMEOUT = 120.0
POLL = 0.25


@asynccontextmanager
async def background(
    job: Coroutine[Any, Any, None], name: str
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``job`` for the block; one that ended by itself (crashed) fails the test."""
    task = asyncio.create_task(job, name=name)
    try:
        yield task
    finally:
        if task.done():
            task.result()
        await cancel_and_wait(task)


async def converge(
    problems: Callable[[], list[str]],
    what: str,
    running: tuple[asyncio.Task[None], ...] = (),
    invariant: Callable[[], list[str]] = list,
) -> None:
    """Poll until ``problems()`` finds none, up to STEP_TIMEOUT; ``invariant()`` must find none
    at every poll, and the ``running`` jobs must not end."""
    deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT
    while True:
        for job in running:
            if job.done():
                job.result()
                raise AssertionError(f"{job.get_name()} ended while waiting for {what}")
        broken = invariant()
        assert not broken, f"while waiting for {what}: {broken}"
        found = problems()
        if not found:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached in {STEP_TIMEOUT:.0f} s: {found}")
        await asyncio.sleep(POLL)


def replicated(
    name: str, replicas: int, image: str = "sim/app:1", **template: Any
) -> dict[str, Any]:
    """A replicated service's spec as the CLI sends it; ``template``: more of TaskTemplate."""
    return {
        "Name": name,
        "TaskTemplate": {"ContainerSpec": {"Image": image}, **template},
        "Mode": {"Replicated": {"Replicas": replicas}},
    }


class Api:
    """The few Engine API calls the test makes, as the docker CLI makes them."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self._client = client

    async def _call(self, method: str, path: str, body: object = None) -> Any:
        async with self._client.request(method, path, json=body) as response:
            text = await response.text()
            assert response.status < 300, f"{method} {path}: {response.status} {text}"
            return await response.json() if text else None

    async def create_service(self, spec: dict[str, Any]) -> str:
        created = await self._call("POST", "/v1.45/services/create", spec)
        return str(created["ID"])

    async def create_secret(self, name: str, data: bytes) -> str:
        spec = {"Name": name, "Data": base64.b64encode(data).decode()}
        created = await self._call("POST", "/v1.45/secrets/create", spec)
        return str(created["ID"])

    async def scale(self, service_id: str, replicas: int) -> None:
        service = await self._call("GET", f"/v1.45/services/{service_id}")
        spec = service["Spec"]
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        version = service["Version"]["Index"]
        await self._call("POST", f"/v1.45/services/{service_id}/update?version={version}", spec)

    async def remove_service(self, service_id: str) -> None:
        await self._call("DELETE", f"/v1.45/services/{service_id}")

    async def drain(self, node_id: str) -> None:
        node = await self._call("GET", f"/v1.45/nodes/{node_id}")
        spec = {**node["Spec"], "Availability": "drain"}
        version = node["Version"]["Index"]
        await self._call("POST", f"/v1.45/nodes/{node_id}/update?version={version}", spec)
