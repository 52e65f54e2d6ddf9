"""A follower's way to the leader: the cluster's requests, forwarded over mutual TLS.

A manager that does not hold the store (a node promoted with ``docker node promote``) answers
the cluster's requests by sending them, as they came, to the leader's port (2377) under
``FORWARDED_PREFIX``, presenting its manager certificate (``LeaderRoute``); the answer
streams back unchanged. The leader serves them with ``forwarded.forwarded_app``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from swarmlet.api.common import parse_json
from swarmlet.api.control import LeaderRoute
from swarmlet.api.proxy import (
    SKIP_AUTO_HEADERS,
    end_to_end,
    outgoing_headers,
    stream_back,
)
from swarmlet.errors import NO_LEADER, Unavailable
from swarmlet.pki.tls import MANAGER_NAME

FORWARDED_PREFIX = "/engine"
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None)


@dataclass(frozen=True)
class Answer:
    """The leader's whole answer to a request the follower reads before answering."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]

    def json(self) -> Any:
        return parse_json(self.body)

    def response(self) -> web.Response:
        """The answer, passed on unchanged."""
        response = web.Response(status=self.status, body=self.body)
        for name, value in self.headers:
            response.headers.add(name, value)
        return response


class Leader:
    """The follower's client of the leader's port: one session, TLS given per request (the
    node's certificate is renewed now and then)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(
        self,
        route: LeaderRoute,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        data: Any,
    ) -> aiohttp.ClientResponse:
        """The leader's response to the request; the managers are tried in turn while none
        can be connected to (nothing of the request has been sent then)."""
        errors = []
        for addr in route.addrs:
            url = URL(f"https://{addr}{FORWARDED_PREFIX}{target}", encoded=True)
            try:
                return await self._client().request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    ssl=route.tls,
                    server_hostname=MANAGER_NAME,
                    skip_auto_headers=SKIP_AUTO_HEADERS,
                    allow_redirects=False,
                )
            except aiohttp.ClientConnectorError as exc:
                errors.append(f"{addr}: {exc}")
            except aiohttp.ClientError as exc:
                raise Unavailable(f"{NO_LEADER} ({addr}: {exc})") from exc
        raise Unavailable(f"{NO_LEADER} ({'; '.join(errors) or 'no manager is known'})")

    async def forward(
        self, request: web.Request, route: LeaderRoute, body: bytes | None = None
    ) -> web.StreamResponse:
        """The request as it came (``body`` when the handler has read it already), answered
        by the leader and streamed back."""
        data: Any = body
        if body is None and request.body_exists:
            data = request.content
        upstream = await self._send(
            route, request.method, _target(request), outgoing_headers(request), data
        )
        return await stream_back(request, upstream)

    async def ask(
        self, request: web.Request, route: LeaderRoute, body: bytes | None = None
    ) -> Answer:
        """The leader's whole answer to the request, for a handler that adds to it."""
        headers = end_to_end(request.headers.items())
        upstream = await self._send(route, request.method, _target(request), headers, body)
        async with upstream:
            try:
                data = await upstream.read()
            except aiohttp.ClientError as exc:
                raise Unavailable(f"{NO_LEADER} ({exc})") from exc
            return Answer(upstream.status, data, end_to_end(upstream.headers.items()))


def _target(request: web.Request) -> str:
    target = request.rel_url.raw_path
    if request.rel_url.raw_query_string:
        target += "?" + request.rel_url.raw_query_string
    return target
