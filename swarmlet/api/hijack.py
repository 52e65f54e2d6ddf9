"""Relaying a hijacked connection: `docker run -it`, `attach`, `exec`.

The client asks with `Connection: Upgrade` / `Upgrade: tcp`; the engine answers `101` and from
then on both sides speak raw bytes on the socket, each side half-closing when its input ends
(the CLI closes its write side at the end of stdin and keeps reading the output). aiohttp's
server protocol closes the whole connection on a half-close, so after the 101 the client's
transport is handed to a small protocol of our own that keeps the write side open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from aiohttp import web

from swarmlet.errors import EngineError

_CHUNK = 64 * 1024


async def relay_upgrade(
    request: web.Request, socket_path: str, target: str, headers: Iterable[tuple[str, str]]
) -> web.StreamResponse:
    body = await request.read()
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path, limit=_CHUNK)
    except OSError as exc:
        raise EngineError(f"cannot reach the engine at unix://{socket_path}: {exc}") from exc
    try:
        writer.write(_request_head(request.method, target, headers, len(body)) + body)
        status, reason, upstream_headers = await _read_head(reader)
        kept = [(k, v) for k, v in upstream_headers if k.lower() not in _FRAMING]
        if status != 101:
            answer = await _read_body(reader, status, upstream_headers)
            return web.Response(status=status, reason=reason, body=answer, headers=kept)
        response = web.StreamResponse(status=101, reason=reason)
        for name, value in kept:
            response.headers.add(name, value)
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
        await response.prepare(request)
        await _splice(request, reader, writer)
        return response
    finally:
        writer.close()


_FRAMING = frozenset({"connection", "upgrade", "content-length", "transfer-encoding"})


def _request_head(
    method: str, target: str, headers: Iterable[tuple[str, str]], length: int
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: docker"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += ["Connection: Upgrade", "Upgrade: tcp"]
    if length:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, list[tuple[str, str]]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise EngineError("the engine closed the connection without an answer") from exc
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _, status, reason = [*status_line.split(" ", 2), ""][:3]
    headers = []
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return int(status), reason, headers


async def _read_body(
    reader: asyncio.StreamReader, status: int, headers: list[tuple[str, str]]
) -> bytes:
    """The body of a refused upgrade (an error answer), by the framing the engine chose."""
    fields = {name.lower(): value for name, value in headers}
    if status in (204, 304) or 100 <= status < 200:
        return b""
    if "content-length" in fields:
        return await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        return b"".join(chunks)
    return await reader.read()


async def _splice(
    request: web.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    transport = request.transport
    assert transport is not None
    # Bytes the client sent right after its request are held by aiohttp; collect them before
    # taking the transport over.
    early = _Collector()
    cast(Any, request.protocol).set_parser(early)
    client = _ClientSide(writer, transport.get_protocol())
    transport.set_protocol(client)
    if early.data:
        writer.write(bytes(early.data))
    if early.eof:
        client.eof_received()
    if not transport.is_reading():
        transport.resume_reading()
    try:
        while data := await reader.read(_CHUNK):
            if transport.is_closing():
                break
            transport.write(data)
            await client.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        transport.close()


class _Collector:
    """Takes the place of aiohttp's payload parser just long enough to collect early bytes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data += data
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True


class _ClientSide(asyncio.Protocol):
    """The client's socket after the 101: its bytes go to the engine, its half-close too."""

    def __init__(self, upstream: asyncio.StreamWriter, original: asyncio.BaseProtocol) -> None:
        self._upstream = upstream
        # aiohttp's own protocol still tracks the connection: it hears when it is lost.
        self._original = original
        self._writable = asyncio.Event()
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        if not self._upstream.is_closing():
            self._upstream.write(data)

    def eof_received(self) -> bool:
        if not self._upstream.is_closing() and self._upstream.can_write_eof():
            self._upstream.write_eof()
        # Keep our side open: the engine's output is still to come.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        self._upstream.close()
        self._original.connection_lost(exc)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drain(self) -> None:
        await self._writable.wait()
