"""The manager's port (2377): one websocket session per agent, the CA's paths, the nodes'
network attachments (``attachments.py``), and the Engine API for the requests other managers
forward (``/engine/...``).

Everything on it is TLS. A session needs the client certificate of a node that is still in the
swarm, and the node is the one the certificate names; each frame is one message of
``swarmlet.protocol``. Every manager serves the CA's paths and the attachments (they write
through the store), but only the leader opens sessions (while its dispatcher runs): another
manager answers 503 before the upgrade, and the agent tries the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from swarmlet.aio import cancel_and_wait
from swarmlet.api.errors import error_middleware
from swarmlet.errors import Unavailable
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
# Why a manager that does not lead refuses a session (503, or the websocket's close).
NOT_LEADING = "this manager is not the leader: its agents' sessions go to the leader"


class _Connection:
    """Outbound messages queue here and one writer sends them, in order, so the dispatcher
    never waits on a slow agent. None is dropped: after the first, assignments are changes to
    what was sent before (``AssignmentChanges``)."""

    def __init__(self) -> None:
        # None: close the session, for this reason.
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._reason = ""

    def send(self, message: Message) -> None:
        self._queue.put_nowait(message)

    def close(self, reason: str = "node removed from the swarm") -> None:
        self._reason = reason
        self._queue.put_nowait(None)

    async def write_to(self, ws: web.WebSocketResponse) -> None:
        while (message := await self._queue.get()) is not None:
            await ws.send_str(encode(message))
        await ws.close(message=self._reason.encode())


async def _register(ws: web.WebSocketResponse, dispatcher: Dispatcher, node_id: str) -> bool:
    """The agent's Register, answered; whether the session goes on."""
    try:
        first = await ws.receive(timeout=REGISTER_TIMEOUT)
        hello = decode(first.data) if first.type == WSMsgType.TEXT else None
    except (TimeoutError, ValidationError):
        hello = None
    if not isinstance(hello, Register):
        await ws.close(message=b"expected register")
        return False
    try:
        # Again: the term may have ended while the agent said who it is.
        if not dispatcher.leading:
            raise Unavailable(NOT_LEADING)
        registered = await dispatcher.register(node_id, hello)
    except SessionRefused as exc:
        await ws.send_str(encode(SessionError(message=exc.message)))
        await ws.close()
        return False
    except Unavailable as exc:
        await ws.close(message=exc.message.encode())
        return False
    await ws.send_str(encode(registered))
    return True


def manager_app(
    dispatcher: Dispatcher,
    authority: CertificateAuthority,
    api: web.Application | None = None,
    attachments: Attachments | None = None,
    routes: Sequence[web.RouteDef] = (),
) -> web.Application:
    """The manager's port; with ``api``, the Engine API the other managers forward the
    cluster's requests to, under ``FORWARDED_PREFIX`` (it admits managers only).
    ``attachments`` defaults to one on the dispatcher's store and clock. ``routes``: the
    daemon's own on the port (a manager joining etcd, ``swarmlet.manager.etcd.join``)."""
    attachments = attachments or Attachments(dispatcher.store, dispatcher.clock)
    app = _sessions_app(dispatcher, authority, attachments)
    app.add_routes(routes)
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
        # Refused before the websocket opens too while this manager does not lead (503).
        if not dispatcher.leading:
            raise Unavailable(NOT_LEADING)
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        open_sessions.add(ws)
        try:
            return await _serve(ws, node.id)
        finally:
            open_sessions.discard(ws)

    async def _serve(ws: web.WebSocketResponse, node_id: str) -> web.WebSocketResponse:
        if not await _register(ws, dispatcher, node_id):
            return ws
        if not dispatcher.leading:  # the term ended while the node was written Ready
            await ws.close(message=NOT_LEADING.encode())
            return ws
        # From here the dispatcher closes the session when the term ends.
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
