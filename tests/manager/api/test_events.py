"""GET /events: the engine's events, and on a manager the swarm's merged with them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from swarmlet.api import make_app
from swarmlet.api.control import LocalNodeState
from swarmlet.clock import SystemClock
from swarmlet.manager.api.events import format_timestamp, merged, parse_timestamp
from swarmlet.manager.events import SwarmEvents, swarm_events_for
from swarmlet.manager.store import Op, Store
from swarmlet.models import Network, Secret, SecretSpec
from tests.api.fakes import require_engine
from tests.manager.api.fakes import FakeControl, manager_control

IMAGE = "swarmlet-test/busybox:latest"


@pytest.mark.parametrize(
    ("raw", "nanos"),
    [
        ("", None),
        ("1700000000", 1700000000 * 10**9),
        ("1700000000.5", 1700000000 * 10**9 + 500_000_000),
        ("1700000000.000000001", 1700000000 * 10**9 + 1),
        ("-1", -(10**9)),
    ],
)
def test_timestamps_are_read_as_moby_reads_them(raw, nanos):
    assert parse_timestamp(raw) == nanos


@pytest.mark.parametrize("raw", ["abc", "1.x", "1 ", "1_000", "99999999999999999999"])
def test_malformed_timestamps(raw):
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(raw)


def test_a_timestamp_is_written_with_nine_digits():
    assert format_timestamp(1700000000 * 10**9 + 1) == "1700000000.000000001"
    assert parse_timestamp(format_timestamp(123_456_789_012)) == 123_456_789_012


def test_merged_in_time_order():
    theirs = [(1, b"a\n"), (5, b"c\n"), (9, b"e\n")]
    ours = [(3, b"b\n"), (5, b"d\n"), (10, b"f\n")]
    assert merged(theirs, ours) == [b"a\n", b"b\n", b"c\n", b"d\n", b"e\n", b"f\n"]


@pytest.fixture
def real_store() -> Store:
    # The engine's events carry the machine's time: the swarm's must too.
    return Store(clock=SystemClock())


@pytest.fixture
async def swarm_events(real_store: Store) -> AsyncIterator[SwarmEvents]:
    events = swarm_events_for(real_store, SystemClock())
    running = asyncio.create_task(events.run(), name="swarm-events")
    await asyncio.sleep(0)
    yield events
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


@pytest.fixture
async def manager(real_store: Store, swarm_events: SwarmEvents) -> AsyncIterator[TestClient]:
    control = await manager_control(real_store)
    async with TestClient(TestServer(make_app(control, SystemClock()))) as client:
        yield client


@pytest.fixture
async def worker() -> AsyncIterator[TestClient]:
    control = FakeControl(state=LocalNodeState.ACTIVE, node_id="w1")
    async with TestClient(TestServer(make_app(control, SystemClock()))) as client:
        yield client


def now() -> str:
    return format_timestamp(time.time_ns())


def lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


async def container(client: TestClient) -> str:
    body = {"Image": IMAGE, "Cmd": ["true"], "Labels": {"swarmlet-test": "api-events"}}
    response = await client.post("/v1.47/containers/create", json=body)
    assert response.status == 201, await response.text()
    return str((await response.json())["Id"])


async def settled(events: SwarmEvents, count: int) -> None:
    """Wait until the log has recorded ``count`` events (it follows the store's watch)."""
    for _ in range(1000):
        if len(events._history) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the log recorded {len(events._history)} events, not {count}")


async def test_the_past_merges_the_swarms_events_with_the_engines(
    manager, real_store, swarm_events
):
    require_engine()
    since = now()
    kept = len(swarm_events._history)
    await real_store.commit([Op.create(Secret(id="sec1", spec=SecretSpec(name="pw")))])
    created = await container(manager)
    try:
        await real_store.commit([Op.create(Network(id="net1", name="backend"))])
        await settled(swarm_events, kept + 2)
        filters = json.dumps({"type": ["secret", "network", "container"]})
        response = await manager.get(
            "/v1.47/events", params={"since": since, "until": now(), "filters": filters}
        )
        assert response.status == 200
        got = lines(await response.read())  # until has passed: the stream ends
    finally:
        await manager.delete(f"/v1.47/containers/{created}?force=1")
    ours = [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in got]
    assert ours.index(("secret", "create", "sec1")) < ours.index(("container", "create", created))
    assert ours.index(("container", "create", created)) < ours.index(("network", "create", "net1"))
    secret = got[ours.index(("secret", "create", "sec1"))]
    assert secret["scope"] == "swarm"
    assert secret["Actor"]["Attributes"] == {"name": "pw"}
    times = [e["timeNano"] for e in got]
    assert times == sorted(times)
    assert {e["Type"] for e in got} <= {"secret", "network", "container"}


async def test_filters_apply_to_the_swarms_events(manager, real_store, swarm_events):
    require_engine()
    since = now()
    kept = len(swarm_events._history)
    await real_store.commit([Op.create(Network(id="n-a", name="alpha"))])
    await real_store.commit([Op.create(Network(id="n-b", name="beta"))])
    await settled(swarm_events, kept + 2)
    filters = json.dumps({"network": ["alp"], "scope": ["swarm"]})
    response = await manager.get(
        "/v1.47/events", params={"since": since, "until": now(), "filters": filters}
    )
    assert [e["Actor"]["ID"] for e in lines(await response.read())] == ["n-a"]


async def test_live_events_come_as_they_happen_and_stop_with_the_client(
    manager, real_store, swarm_events
):
    require_engine()
    filters = json.dumps({"type": ["network", "container"], "event": ["create"]})
    events = await manager.get("/v1.47/events", params={"filters": filters})
    assert events.status == 200
    # The subscription is taken before the answer's head is sent.
    assert len(swarm_events._subscribers) == 1
    await real_store.commit([Op.create(Network(id="live1", name="live"))])
    created = await container(manager)
    try:
        # Other containers of the machine's engine may come between.
        seen: list[tuple[str, str, str]] = []
        while ("container", created, "local") not in seen:
            event = json.loads(await asyncio.wait_for(events.content.readline(), timeout=20))
            seen.append((event["Type"], event["Actor"]["ID"], event["scope"]))
        assert seen.index(("network", "live1", "swarm")) < seen.index(
            ("container", created, "local")
        )
    finally:
        events.close()
        await manager.delete(f"/v1.47/containers/{created}?force=1")
    # The client went away: the handler notices, and leaves nothing running behind.
    for _ in range(500):
        live = [t for t in asyncio.all_tasks() if t.get_name().startswith("events-")]
        if not swarm_events._subscribers and not live:
            break
        await asyncio.sleep(0.02)
    assert swarm_events._subscribers == set()
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("events-")] == []


async def test_until_in_the_future_ends_the_stream_then(manager, real_store, swarm_events):
    require_engine()
    until = format_timestamp(time.time_ns() + 2 * 10**9)
    filters = json.dumps({"type": ["secret"]})
    response = await manager.get("/v1.47/events", params={"until": until, "filters": filters})
    await real_store.commit([Op.create(Secret(id="sec-live", spec=SecretSpec(name="live")))])
    body = await asyncio.wait_for(response.read(), timeout=30)
    assert "sec-live" in [e["Actor"]["ID"] for e in lines(body)]


async def test_a_query_the_engine_refuses_gets_its_answer(manager):
    require_engine()
    response = await manager.get("/v1.47/events", params={"since": "yesterday"})
    assert response.status in (400, 500)
    assert "yesterday" in (await response.json())["message"]
    response = await manager.get("/v1.47/events", params={"since": "20", "until": "10"})
    assert response.status == 400
    assert "cannot be after" in (await response.json())["message"]


async def test_a_worker_passes_the_engines_events_through(worker):
    require_engine()
    created = await container(worker)
    try:
        filters = json.dumps({"container": [created]})
        response = await worker.get(
            "/v1.47/events", params={"since": "0", "until": now(), "filters": filters}
        )
        got = lines(await response.read())
    finally:
        await worker.delete(f"/v1.47/containers/{created}?force=1")
    assert [(e["Type"], e["Action"]) for e in got] == [("container", "create")]
