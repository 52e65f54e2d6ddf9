"""Fixtures every test folder may use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from swarmlet.agent.engine import EngineClient
from swarmlet.errors import SwarmletError
from swarmlet.ids import new_id

# Every container a test makes carries this label, so the test removes exactly its own.
TEST_LABEL = "com.swarmlet.test"


@pytest.fixture
async def docker() -> AsyncIterator[EngineClient]:
    url = os.environ.get("SWARMLET_TEST_DOCKER_HOST", "unix:///var/run/docker.sock")
    engine = EngineClient(url)
    try:
        await engine.ping()
    except SwarmletError as exc:
        await engine.close()
        if os.environ.get("CI") == "true":
            pytest.fail(f"no engine at {url} under CI: {exc}")
        pytest.skip(f"no engine at {url}: {exc}")
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def test_labels(docker: EngineClient) -> AsyncIterator[dict[str, str]]:
    """Labels for the containers of one test; those containers are removed after it."""
    labels = {TEST_LABEL: new_id()}
    try:
        yield labels
    finally:
        for container in await docker.list_containers(labels):
            await docker.remove_container(container.id, force=True)
