"""The agent's session to a manager: register, heartbeat, receive assignments, report status.

Only the leader opens sessions. The agent keeps the swarm's managers (as the session tells it,
``Managers``) and rotates through them: a manager that refuses (not the leader) or cannot be
reached, or a session that ends, sends it to the next at once; after a whole round without a
session it waits (backoff). After every reconnect it sends the last status of every task
again, so nothing reported while it had no manager is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import aiohttp
from pydantic import ValidationError

from swarmlet.aio import cancel_and_wait
from swarmlet.clock import Clock
from swarmlet.errors import InvalidSpec, Unavailable
from swarmlet.models import Config, NodeDescription, Secret, Task
from swarmlet.pki import Credentials
from swarmlet.pki.tls import MANAGER_NAME, client_context
from swarmlet.protocol import (
    SESSION_PATH,
    AssignmentChanges,
    Assignments,
    Certificates,
    Heartbeat,
    LogsCancel,
    LogsSubscribe,
    Managers,
    Message,
    NetworkState,
    Register,
    Registered,
    SessionError,
    StatusUpdate,
    StatusUpdates,
    assigned_after,
    decode,
    encode,
)

log = logging.getLogger(__name__)

BACKOFF_START = 0.2
BACKOFF_MAX = 2.0
CONNECT_TIMEOUT = 5.0
# The websocket is pinged this often, and the session given up when nothing (a pong, or any
# message) has come from the manager for SILENT_S: a manager that went silent without closing
# anything (its host cut off, its process stopped) would otherwise hold the session until TCP
# gives up, minutes later, while the new leader marks the node Down (three heartbeat periods
# after its term began) and replaces its tasks. aiohttp answers the pings on the manager's
# event loop, so a manager busy for a while (a burst of thousands of tasks, on a loaded
# machine) answers late: SILENT_S is well above such a pause and below the new leader's
# grace. Both are the connection's real time, not the injected clock's.
PING_S = 5.0
SILENT_S = 10.0
# A session that lasted less than this counts as a failed attempt (a manager that accepts
# and closes at once must not be retried without a pause).
LASTING_S = BACKOFF_MAX


class SessionClosed(ConnectionError):
    """No session is open to send on."""


class LogHandler(Protocol):
    """Where the manager's log subscriptions go (``swarmlet.agent.logs.LogPublisher``)."""

    def handle(self, message: LogsSubscribe | LogsCancel) -> None: ...

    def session_ended(self) -> None: ...


async def _open(
    addr: str, credentials: Credentials
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """A websocket to the manager at ``addr``, on TLS with the node's certificate; the
    certificate and the roots are read again for each connection (they may have been renewed)."""
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))
    try:
        ws = await http.ws_connect(
            f"https://{addr}{SESSION_PATH}",
            max_msg_size=64 * 1024 * 1024,
            # Pings and pongs are the session's own (``Session._pings``, ``_receive``).
            heartbeat=None,
            autoping=False,
            timeout=aiohttp.ClientWSTimeout(ws_receive=SILENT_S, ws_close=CONNECT_TIMEOUT),
            ssl=client_context(credentials.trust(), credentials),
            server_hostname=MANAGER_NAME,
        )
    except aiohttp.WSServerHandshakeError as exc:
        await http.close()
        if exc.status == 503:
            raise Unavailable(f"{addr} is not the leader") from exc
        raise
    except BaseException:
        await http.close()
        raise
    return http, ws


async def _pings(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Ping the manager every PING_S, so that a live one always has something to answer."""
    while not ws.closed:
        try:
            await ws.ping()
        except (aiohttp.ClientError, ConnectionError):
            return  # the session is ending; its receiver says why
        await asyncio.sleep(PING_S)


async def _register(ws: aiohttp.ClientWebSocketResponse, hello: Register) -> Registered:
    await ws.send_str(encode(hello))
    frame = await ws.receive(timeout=CONNECT_TIMEOUT)
    if frame.type != aiohttp.WSMsgType.TEXT:
        raise Unavailable(f"the manager closed the session: {frame.extra or frame.type.name}")
    answer = decode(frame.data)
    if isinstance(answer, SessionError):
        raise InvalidSpec(answer.message)
    if not isinstance(answer, Registered):
        raise Unavailable(f"unexpected answer from the manager: {answer.type}")
    return answer


def next_manager(managers: Sequence[str], current: str) -> str:
    """The manager to try after ``current``: the next in the list, in a ring (the first when
    ``current`` is no longer in it)."""
    try:
        return managers[(list(managers).index(current) + 1) % len(managers)]
    except ValueError:
        return managers[0]


class Session:
    """The long-lived session of a node that has joined."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        manager_addrs: Sequence[str],
        addr: str,
        describe: Callable[[], Awaitable[NodeDescription]],
        data_addr: str = "",
        assign: Callable[[Sequence[Task]], Awaitable[None]],
        statuses: Callable[[], list[StatusUpdate]],
        clock: Clock,
        network: Callable[[NetworkState], Awaitable[None]] | None = None,
        certificates: Callable[[Certificates], Awaitable[None]] | None = None,
        dependencies: Callable[[Sequence[Secret], Sequence[Config]], None] | None = None,
        logs: LogHandler | None = None,
        on_managers: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._credentials = credentials
        # The managers it rotates through: those it was given, then those the session names.
        self._managers = list(manager_addrs)
        self._on_managers = on_managers
        self._addr = addr
        self._data_addr = data_addr
        self._describe = describe
        self._assign = assign
        self._statuses = statuses
        self._clock = clock
        self._network = network
        self._certificates = certificates
        self._dependencies = dependencies
        self._logs = logs
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.connected = asyncio.Event()
        # The manager of the open session, and when it was registered (None: no session).
        self._manager: str | None = None
        self._opened_at: float | None = None

    async def report(self, updates: list[StatusUpdate]) -> None:
        """Send status updates now; raises SessionClosed while no session is open."""
        await self.send(StatusUpdates(updates=updates))

    async def send(self, message: Message) -> None:
        """Send a message now; raises SessionClosed while no session is open."""
        ws = self._ws
        if ws is None or ws.closed:
            raise SessionClosed("no session to the manager")
        try:
            await ws.send_str(encode(message))
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise SessionClosed(str(exc)) from exc

    @property
    def managers(self) -> list[str]:
        """The managers the session rotates through."""
        return list(self._managers)

    @property
    def manager(self) -> str | None:
        """The manager of the open session (None while there is none)."""
        return self._manager

    async def run(self) -> None:
        backoff = BACKOFF_START
        manager = self._managers[0]
        # Managers tried in a row without a lasting session.
        failed = 0
        while True:
            try:
                await self._session(manager)
            except InvalidSpec as exc:
                # Refused (a removed node): retrying with the same identity cannot succeed,
                # but the node keeps trying slowly in case it is a passing state.
                log.error("the manager refused the session: %s", exc.message)
                await self._clock.sleep(BACKOFF_MAX * 5)
            except (aiohttp.ClientError, OSError, TimeoutError, Unavailable) as exc:
                log.info("no session with %s: %s", manager, exc)
            else:
                log.info("session to %s lost", manager)
            opened, self._opened_at = self._opened_at, None
            if opened is not None and self._clock.monotonic() - opened >= LASTING_S:
                failed, backoff = 0, BACKOFF_START
            else:
                failed += 1
            # The next manager at once (this one refused, is down, or its session ended); a
            # pause only once every one has failed in a row.
            manager = next_manager(self._managers, manager)
            if failed >= len(self._managers):
                failed = 0
                await self._clock.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _learn_managers(self, addrs: Sequence[str]) -> None:
        """The swarm's managers, as the session says: the list to rotate through."""
        if not addrs or list(addrs) == self._managers:
            return
        self._managers = list(addrs)
        log.info("the swarm's managers: %s", ", ".join(addrs))
        if self._on_managers is not None:
            self._on_managers(list(addrs))

    async def _session(self, manager: str) -> None:
        """One session with ``manager``: returns when it ends (the manager closed it or the
        connection was lost), raises when none could be opened."""
        http, ws = await _open(manager, self._credentials)
        try:
            hello = Register(
                description=await self._describe(), addr=self._addr, data_addr=self._data_addr
            )
            registered = await _register(ws, hello)
            log.info("session open to %s", manager)
            self._opened_at = self._clock.monotonic()
            self._manager = manager
            self._ws = ws
            self.connected.set()
            beats = asyncio.create_task(
                self._heartbeats(ws, registered.heartbeat_period), name="session-heartbeats"
            )
            pings = asyncio.create_task(_pings(ws), name="session-pings")
            try:
                await self._resend()
                await self._receive(ws)
            except TimeoutError:
                log.info("session to %s lost: the manager was silent for %.0f s", manager, SILENT_S)
            except (aiohttp.ClientError, OSError) as exc:
                log.info("session to %s failed: %s", manager, exc)
            finally:
                await cancel_and_wait(pings)
                await cancel_and_wait(beats)
        finally:
            self._ws = None
            self._manager = None
            self.connected.clear()
            if self._logs is not None:
                self._logs.session_ended()
            await ws.close()
            await http.close()

    async def _resend(self) -> None:
        statuses = self._statuses()
        if statuses:
            await self.report(statuses)

    async def _heartbeats(self, ws: aiohttp.ClientWebSocketResponse, period: float) -> None:
        while not ws.closed:
            try:
                await ws.send_str(encode(Heartbeat()))
            except (aiohttp.ClientError, ConnectionError):
                return  # the session is ending; its receiver says why
            await self._clock.sleep(period)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # The node's tasks as this session has been told them (a new session is sent them
        # whole first): the worker is always given the whole set.
        assigned: dict[str, Task] = {}
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.PING:
                await ws.pong(frame.data)
                continue
            if frame.type is aiohttp.WSMsgType.PONG:
                continue  # the manager is alive; receiving it reset the silence timeout
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                message: Message = decode(frame.data)
            except ValidationError as exc:
                # Not the error's text: it quotes the message, which may carry secrets.
                log.error(
                    "ignored a malformed message from the manager (%d errors)", exc.error_count()
                )
                continue
            if isinstance(message, Managers):
                self._learn_managers(message.addrs)
            elif isinstance(message, Assignments | AssignmentChanges):
                assigned = assigned_after(assigned, message)
                # The secrets and configs first: the tasks given next may need them at once.
                if self._dependencies is not None:
                    self._dependencies(message.secrets, message.configs)
                await self._assign(list(assigned.values()))
            elif isinstance(message, NetworkState) and self._network is not None:
                await self._network(message)
            elif isinstance(message, Certificates) and self._certificates is not None:
                await self._certificates(message)
            elif isinstance(message, LogsSubscribe | LogsCancel) and self._logs is not None:
                self._logs.handle(message)
