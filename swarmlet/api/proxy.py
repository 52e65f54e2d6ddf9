"""Everything that is not a swarm endpoint goes to the local engine, streamed both ways.

One client session over the engine's unix socket. The API version in the path is lowered to
what the engine speaks (asked once, from its /_ping): a client that negotiated 1.47 with us
still reaches an engine that refuses prefixes above its own. Hijacked connections (attach,
exec) are relayed by `hijack.relay_upgrade`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from swarmlet.api.hijack import relay_upgrade
from swarmlet.errors import EngineError

_VERSIONED = re.compile(r"/v(\d+)\.(\d+)(/.*)?")
# Headers about one hop of a connection: never passed on (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def engine_path(raw_path: str, engine_version: str) -> str:
    """The path with its /vX.Y prefix lowered to at most the engine's version."""
    match = _VERSIONED.fullmatch(raw_path)
    if match is None:
        return raw_path
    requested = (int(match.group(1)), int(match.group(2)))
    major, minor = min(requested, parse_version(engine_version))
    return f"/v{major}.{minor}{match.group(3) or ''}"


def end_to_end(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, value) for name, value in items if name.lower() not in HOP_BY_HOP]


def is_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in [token.strip() for token in connection.split(",")]


class Engine:
    """The local engine behind `socket_path`."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None
        self._version: str | None = None
        self._builder_version: str | None = None
        self._negotiating = asyncio.Lock()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket_path),
                # Streams (events, logs, wait) may stay open for as long as the client wants.
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                # Compressed bodies pass through as they are, with their Content-Encoding.
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _unreachable(self, exc: Exception) -> EngineError:
        return EngineError(f"cannot reach the engine at unix://{self.socket_path}: {exc}")

    async def _negotiate(self) -> None:
        async with self._negotiating:
            if self._version is not None:
                return
            try:
                async with self._client().get(_url("/_ping")) as response:
                    self._version = response.headers.get("Api-Version", "1.24")
                    self._builder_version = response.headers.get("Builder-Version")
            except aiohttp.ClientError as exc:
                raise self._unreachable(exc) from exc

    async def api_version(self) -> str:
        """The engine's own API version (its /_ping's Api-Version), asked once."""
        if self._version is None:
            await self._negotiate()
        assert self._version is not None
        return self._version

    async def builder_version(self) -> str | None:
        await self.api_version()
        return self._builder_version

    async def get_json(self, path: str) -> Any:
        """GET a path of the engine, at the engine's version; an error answer raises."""
        version = await self.api_version()
        try:
            async with self._client().get(_url(f"/v{version}{path}")) as response:
                data = await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        if response.status >= 400:
            message = data.get("message", "") if isinstance(data, dict) else str(data)
            raise EngineError(message or f"engine answered {response.status}", response.status)
        return data

    async def forward(self, request: web.Request) -> web.StreamResponse:
        target = engine_path(request.rel_url.raw_path, await self.api_version())
        if request.rel_url.raw_query_string:
            target += "?" + request.rel_url.raw_query_string
        if is_upgrade(request):
            headers = end_to_end(request.headers.items())
            return await relay_upgrade(request, self.socket_path, target, headers)
        try:
            upstream = await self._client().request(
                request.method,
                _url(target),
                headers=outgoing_headers(request),
                data=request.content if request.body_exists else None,
                skip_auto_headers=SKIP_AUTO_HEADERS,
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        return await stream_back(request, upstream)

    async def open(self, request: web.Request, query: str) -> aiohttp.ClientResponse:
        """A GET of the request's path (its version lowered to the engine's) with another
        query, for a caller that reads the answer as it streams and closes it."""
        target = engine_path(request.rel_url.raw_path, await self.api_version())
        try:
            return await self._client().get(_url(f"{target}?{query}" if query else target))
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc

    async def send(self, request: web.Request, path: str, body: bytes) -> aiohttp.ClientResponse:
        """``request`` to the engine at ``path`` (unversioned, with the request's query) with
        another JSON body; the caller reads the answer (``stream_back`` relays it)."""
        target = f"/v{await self.api_version()}{path}"
        if request.rel_url.raw_query_string:
            target += "?" + request.rel_url.raw_query_string
        headers = [
            (name, value)
            for name, value in end_to_end(request.headers.items())
            if name.lower() not in ("content-length", "content-type")
        ]
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        try:
            return await self._client().request(
                request.method,
                _url(target),
                headers=headers,
                data=body,
                skip_auto_headers=SKIP_AUTO_HEADERS,
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc


# What aiohttp's client would add by itself: a relayed request carries only the client's.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def outgoing_headers(request: web.Request) -> list[tuple[str, str]]:
    """The request's end-to-end headers, for relaying it (its length kept, when it has one)."""
    headers = end_to_end(request.headers.items())
    if "Content-Length" in request.headers:
        headers.append(("Content-Length", request.headers["Content-Length"]))
    return headers


async def stream_back(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    """An upstream's answer to the client, unchanged: its status, its end-to-end headers, and
    its body chunk by chunk as it comes. Closes the upstream response."""
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in end_to_end(upstream.headers.items()):
            response.headers.add(name, value)
        length = upstream.headers.get("Content-Length")
        if length is not None and length.isdigit():
            response.content_length = int(length)
        await response.prepare(request)
        try:
            # Each chunk goes out as it comes: logs, events and pull progress are live.
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            # The client went away (`docker run -d` drops its wait; Ctrl-C on `events`):
            # leaving the block closes the upstream side too.
            pass
        return response


ENGINE = web.AppKey("engine", Engine)


async def proxy(request: web.Request) -> web.StreamResponse:
    """The catch-all route: the request as it came, answered by the engine."""
    return await request.app[ENGINE].forward(request)


def _url(target: str) -> URL:
    # The host is ignored on a unix socket; the path and query pass exactly as they came.
    return URL("http://docker" + target, encoded=True)
