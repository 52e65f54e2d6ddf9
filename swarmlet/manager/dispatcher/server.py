"""The agents' side door: one websocket session per agent on the manager's port (2377).

Each frame is one message of ``swarmlet.protocol``. The transport is plain TCP here; mutual TLS
(a later issue) only changes the ``ssl`` context the site is started with.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from swarmlet.aio import cancel_and_wait
from swarmlet.manager.dispatcher.dispatcher import Dispatcher, SessionRefused
from swarmlet.protocol import (
    Heartbeat,
    Message,
    Register,
    SessionError,
    StatusUpdates,
    decode,
    encode,
)

log = logging.getLogger(__name__)

SESSION_PATH = "/session"
# How long a new connection may take to say who it is.
REGISTER_TIMEOUT = 10.0


class _Connection:
    """Outbound messages queue here and one writer sends them, so the dispatcher never waits
    on a slow agent. Only the latest assignment set matters, so older ones are dropped."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Message] = asyncio.Queue()

    def send(self, message: Message) -> None:
        self._queue.put_nowait(message)

    async def write_to(self, ws: web.WebSocketResponse) -> None:
        while True:
            message = await self._queue.get()
            await ws.send_str(encode(message))


def session_app(dispatcher: Dispatcher) -> web.Application:
    open_sessions: set[web.WebSocketResponse] = set()

    async def session(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        open_sessions.add(ws)
        try:
            return await _serve(ws)
        finally:
            open_sessions.discard(ws)

    async def _serve(ws: web.WebSocketResponse) -> web.WebSocketResponse:
        try:
            first = await ws.receive(timeout=REGISTER_TIMEOUT)
            hello = decode(first.data) if first.type == WSMsgType.TEXT else None
        except (TimeoutError, ValidationError):
            hello = None
        if not isinstance(hello, Register):
            await ws.close(message=b"expected register")
            return ws
        try:
            registered = dispatcher.register(hello)
        except SessionRefused as exc:
            await ws.send_str(encode(SessionError(message=exc.message)))
            await ws.close()
            return ws
        await ws.send_str(encode(registered))
        node_id = registered.node_id
        connection = _Connection()
        writer = asyncio.create_task(connection.write_to(ws), name=f"session-writer-{node_id}")
        dispatcher.attach(node_id, connection)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    break
                message = decode(frame.data)
                if isinstance(message, Heartbeat):
                    dispatcher.heartbeat(node_id)
                elif isinstance(message, StatusUpdates):
                    dispatcher.update_statuses(node_id, message.updates)
        except ValidationError as exc:
            log.warning("node %s sent a malformed message: %s", node_id, exc)
        finally:
            dispatcher.detach(node_id, connection)
            await cancel_and_wait(writer)
        return ws

    async def close_sessions(app: web.Application) -> None:
        # Agents reconnect to whichever manager is up; nothing waits for a goodbye.
        for ws in list(open_sessions):
            await ws.close(message=b"manager shutting down")

    app = web.Application()
    app.router.add_get(SESSION_PATH, session)
    app.on_shutdown.append(close_sessions)
    return app
