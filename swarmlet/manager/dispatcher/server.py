"""The manager's port (2377): one websocket session per agent, the CA's paths, the nodes'
network attachments (``attachments.py``), and the Engine API for the requests other managers
forward (``/engine/...``).

Everything on it is TLS. A session needs the client certificate of a node that is still in the
swarm, and the node is the one the certificate names; each frame is one message of
``swarmlet.protocol``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from swarmlet.aio import cancel_and_wait
from swarmlet.api.errors import error_middleware
from swarmlet.manager.api.leader import FORWARDED_PREFIX
from swarmlet.manager.ca import CertificateAuthority
from swarmlet.manager.ca.server import ca_routes, peer_of
from swarmlet.manager.dispatcher.attachments import Attachments, attachment_routes
from swarmlet.manager.dispatcher.dispatcher import Dispatcher, SessionRefused
from swarmlet.protocol import (
    SESSION_PATH,
    Heartbeat,
    Message,
    Register,
    SessionError,
    StatusUpdates,
    decode,
    encode,
)

log = logging.getLogger(__name__)

# How long a new connection may take to say who it is.
REGISTER_TIMEOUT = 10.0


class _Connection:
    """Outbound messages queue here and one writer sends them, so the dispatcher never waits
    on a slow agent. Only the latest assignment set matters, so older ones are dropped."""

    def __init__(self) -> None:
        # None: close the session.
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()

    def send(self, message: Message) -> None:
        self._queue.put_nowait(message)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def write_to(self, ws: web.WebSocketResponse) -> None:
        while (message := await self._queue.get()) is not None:
            await ws.send_str(encode(message))
        await ws.close(message=b"node removed from the swarm")


def manager_app(
    dispatcher: Dispatcher,
    authority: CertificateAuthority,
    api: web.Application | None = None,
    attachments: Attachments | None = None,
) -> web.Application:
    """The manager's port; with ``api``, the Engine API the other managers forward the
    cluster's requests to, under ``FORWARDED_PREFIX`` (it admits managers only).
    ``attachments`` defaults to one on the dispatcher's store and clock."""
    attachments = attachments or Attachments(dispatcher.store, dispatcher.clock)
    app = _sessions_app(dispatcher, authority, attachments)
    if api is not None:
        app.add_subapp(FORWARDED_PREFIX, api)
    return app


def _sessions_app(
    dispatcher: Dispatcher, authority: CertificateAuthority, attachments: Attachments
) -> web.Application:
    open_sessions: set[web.WebSocketResponse] = set()

    async def session(request: web.Request) -> web.WebSocketResponse:
        # Refused before the websocket opens: no certificate, or a removed node's (403).
        node = authority.admit(peer_of(request))
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        open_sessions.add(ws)
        try:
            return await _serve(ws, node.id)
        finally:
            open_sessions.discard(ws)

    async def _serve(ws: web.WebSocketResponse, node_id: str) -> web.WebSocketResponse:
        try:
            first = await ws.receive(timeout=REGISTER_TIMEOUT)
            hello = decode(first.data) if first.type == WSMsgType.TEXT else None
        except (TimeoutError, ValidationError):
            hello = None
        if not isinstance(hello, Register):
            await ws.close(message=b"expected register")
            return ws
        try:
            registered = await dispatcher.register(node_id, hello)
        except SessionRefused as exc:
            await ws.send_str(encode(SessionError(message=exc.message)))
            await ws.close()
            return ws
        await ws.send_str(encode(registered))
        connection = _Connection()
        writer = asyncio.create_task(connection.write_to(ws), name=f"session-writer-{node_id}")
        dispatcher.attach(node_id, connection)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    break
                message = decode(frame.data)
                if isinstance(message, Heartbeat):
                    await dispatcher.heartbeat(node_id)
                elif isinstance(message, StatusUpdates):
                    dispatcher.report_statuses(node_id, message.updates)
                else:
                    await dispatcher.receive(node_id, message)
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

    app = web.Application(middlewares=[error_middleware])
    app.add_routes(ca_routes(authority))
    app.add_routes(attachment_routes(attachments, authority))
    app.router.add_get(SESSION_PATH, session)
    app.on_shutdown.append(close_sessions)
    return app
