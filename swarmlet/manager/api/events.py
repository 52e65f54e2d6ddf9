"""GET /events where the store is: the engine's events and the swarm's beside them
(docs/events.md).

A node that holds no store (a worker, a follower, a locked manager, a node outside a swarm)
passes the request through to its engine (``swarmlet.api.backend``). A manager merges the
engine's stream with the swarm's events (``swarmlet.manager.events``), as a Docker manager's
one stream holds both, in two phases:

1. With ``since`` or ``until`` (moby replays its kept events then), what is already past: the
   engine asked with ``until`` at most now (it answers that and ends) and the kept swarm
   events of the same span, merged in time order. ``until`` in the past ends the stream here.
2. Live: the engine asked from just after now (``since`` = now + 1 ns: what it saw between the
   two requests is not lost, nothing is sent twice) and the swarm events from the moment the
   subscription was taken, each written as it comes, until ``until``, the engine's end, or
   the client going away.

``since``, ``until`` and ``filters`` are the engine's to check: a query it would refuse goes
to it unchanged and its answer comes back. The engine applies the filters to its events;
the same filters, read as moby reads them, select the swarm's.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import re
from collections.abc import AsyncIterator, Sequence
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from swarmlet.api.common import clock_of
from swarmlet.api.proxy import ENGINE, stream_back
from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.filters import Filters
from swarmlet.manager.events import EventFilter, Subscription, swarm_events_for, unix_nano

SECOND_NS = 1_000_000_000
# How often a live stream with nothing to send checks that its client is still there.
CLIENT_CHECK = 1.0
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_INT64 = 2**63 - 1


def parse_timestamp(raw: str) -> int | None:
    """moby's timetypes.ParseTimestamps (unix ``seconds[.fraction]``), in nanoseconds since
    the epoch; None for no bound. ValueError for what Go's ParseInt refuses."""
    if not raw:
        return None
    seconds, dot, fraction = raw.partition(".")
    if not _INTEGER.fullmatch(seconds) or (dot and not _INTEGER.fullmatch(fraction)):
        raise ValueError(f"invalid timestamp {raw!r}")
    if any(abs(int(part)) > _MAX_INT64 for part in (seconds, fraction) if part):
        raise ValueError(f"timestamp {raw!r} is out of range")
    nanos = 0
    if dot:
        # Go scales the fraction's digits to nanoseconds (exact here for up to nine).
        digits, places = int(fraction), len(fraction)
        nanos = digits * 10 ** (9 - places) if places <= 9 else int(digits * 10.0 ** (9 - places))
    return int(seconds) * SECOND_NS + nanos


def format_timestamp(nanos: int) -> str:
    """Nanoseconds since the epoch as the engine reads a ``since``/``until``."""
    seconds, rest = divmod(nanos, SECOND_NS)
    return f"{seconds}.{rest:09d}"


def event_time(line: bytes) -> int:
    """An engine event's time in nanoseconds (0 when it has none)."""
    try:
        data = json.loads(line)
    except ValueError:
        return 0
    if not isinstance(data, dict):
        return 0
    nanos = data.get("timeNano")
    if isinstance(nanos, int):
        return nanos
    seconds = data.get("time")
    return seconds * SECOND_NS if isinstance(seconds, int) else 0


def _query(request: web.Request, **bounds: str) -> str:
    """The request's query with ``since``/``until`` replaced."""
    pairs = [(key, value) for key, value in request.query.items() if key not in bounds]
    pairs += list(bounds.items())
    return urlencode(pairs, quote_via=quote)


async def events(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    store = store_of(request)
    try:
        since = parse_timestamp(request.query.get("since", ""))
        until = parse_timestamp(request.query.get("until", ""))
        filters = Filters.parse(request.query.get("filters"))
    except (ValueError, InvalidSpec):
        return await engine.forward(request)  # its error, in its words
    if since is not None and until is not None and until < since:
        return await engine.forward(request)
    clock = clock_of(request)
    selected = EventFilter(filters.values)
    with swarm_events_for(store, clock).subscribe() as subscription:
        now = unix_nano(clock.now())
        response: web.StreamResponse | None = None
        query = request.rel_url.raw_query_string
        if since is not None or until is not None:
            past_only = until is not None and until < now
            end = until if until is not None and past_only else now
            upstream = await engine.open(request, _query(request, until=format_timestamp(end)))
            if upstream.status != 200:
                return await stream_back(request, upstream)
            response = await _prepare(request)
            async with upstream:
                theirs = [(event_time(line), line) async for line in _lines(upstream)]
            ours = sorted(
                (
                    (event.time_nano, event.line())
                    for event in subscription.past
                    if (since or 0) <= event.time_nano <= end and selected.include(event)
                ),
                key=lambda item: item[0],
            )
            with contextlib.suppress(ConnectionError):
                await response.write(b"".join(merged(theirs, ours)))
            if past_only:
                return response
            query = _query(request, since=format_timestamp(now + 1))
        upstream = await engine.open(request, query)
        async with upstream:
            if upstream.status != 200:
                # Before anything was sent: the engine's answer; after the past: the end.
                return response or await stream_back(request, upstream)
            response = response or await _prepare(request)
            deadline = None if until is None else (until - now) / SECOND_NS
            live = _Live(request, response, clock, selected, until)
            await live.run(upstream, subscription, deadline)
        return response


def merged(theirs: Sequence[tuple[int, bytes]], ours: Sequence[tuple[int, bytes]]) -> list[bytes]:
    """Two time-ordered lists of (time, line) as one, in time order (the engine's first at
    the same time)."""
    return [line for _, line in heapq.merge(theirs, ours, key=lambda item: item[0])]


async def _prepare(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    return response


async def _lines(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The engine's stream, one event (a line) at a time; an engine that breaks off ends it."""
    with contextlib.suppress(aiohttp.ClientError):
        async for line in upstream.content:
            if line.strip():
                yield line if line.endswith(b"\n") else line + b"\n"


class _Ended(Exception):
    """The live stream is over: ``until`` passed, the engine ended it, or the client left."""


class _Live:
    """The live phase: two pumps (the engine's lines, the swarm's events) into one queue, one
    writer out of it, and two watches (the deadline, the client), in one task group; the
    first that ends the stream cancels the rest."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        clock: Clock,
        selected: EventFilter,
        until: int | None,
    ) -> None:
        self._request = request
        self._response = response
        self._clock = clock
        self._selected = selected
        self._until = until
        # None: the end (what was queued before it is written first).
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def run(
        self,
        upstream: aiohttp.ClientResponse,
        subscription: Subscription,
        deadline: float | None,
    ) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._engine(upstream), name="events-engine")
                group.create_task(self._swarm(subscription), name="events-swarm")
                group.create_task(self._write(), name="events-writer")
                group.create_task(self._watch_client(), name="events-client")
                if deadline is not None:
                    group.create_task(self._deadline(deadline), name="events-until")
        except* _Ended:
            pass

    async def _engine(self, upstream: aiohttp.ClientResponse) -> None:
        async for line in _lines(upstream):
            await self._out.put(line)
        await self._out.put(None)

    async def _swarm(self, subscription: Subscription) -> None:
        while True:
            event = await subscription.next()
            if self._until is not None and event.time_nano > self._until:
                continue
            if self._selected.include(event):
                await self._out.put(event.line())

    async def _write(self) -> None:
        while (line := await self._out.get()) is not None:
            try:
                await self._response.write(line)
            except ConnectionError:
                raise _Ended from None
        raise _Ended

    async def _watch_client(self) -> None:
        while not _client_gone(self._request):
            await self._clock.sleep(CLIENT_CHECK)
        raise _Ended

    async def _deadline(self, seconds: float) -> None:
        await self._clock.sleep(seconds)
        raise _Ended


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
