"""GET /services/{id}/logs and /tasks/{id}/logs: ``docker service logs``, streamed.

The query is checked as moby's swarm router and daemon/cluster check it, then the log broker
(``swarmlet.manager.dispatcher.logs``) asks the nodes of the tasks for their containers' logs
and this handler writes what comes back as moby's WriteLogStream writes it: Docker's
multiplexed stream for a service without a TTY (the Content-Type says so from API 1.42), a raw
one otherwise; with ``details``, each line opens with the log's attributes and its context
(``com.docker.swarm.node.id``, ``.service.id``, ``.task.id``), key-sorted, query-escaped and
joined by ``,``, then a space; with ``timestamps``, the engine's timestamp and a space before
that. Logs some node could not give end the stream with ``Error grabbing logs: ...`` on the
daemon's error stream.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote_plus

from aiohttp import web

from swarmlet.api.common import bool_query, clock_of
from swarmlet.api.proxy import parse_version
from swarmlet.api.versions import API_VERSION
from swarmlet.errors import InvalidSpec
from swarmlet.manager.api.common import store_of
from swarmlet.manager.api.lookup import resolve, service_names, task_names
from swarmlet.manager.dispatcher.logs import LogBroker, LogOptions, LogSelector, broker_for
from swarmlet.manager.store import Store
from swarmlet.models import Service, Task
from swarmlet.protocol import LogEntry

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
STDOUT, STDERR, SYSTEMERR = 1, 2, 3
NODE_KEY = "com.docker.swarm.node.id"
SERVICE_KEY = "com.docker.swarm.service.id"
TASK_KEY = "com.docker.swarm.task.id"
_CONTEXT_KEYS = frozenset({NODE_KEY, SERVICE_KEY, TASK_KEY})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_INT64 = 2**63 - 1


# The query, checked


def parse_tail(raw: str) -> int | None:
    """moby's daemon/cluster ServiceLogs: "all" or "" for every line, else a count."""
    if raw in ("all", ""):
        return None
    if not _INTEGER.fullmatch(raw) or abs(int(raw)) > _MAX_INT64:
        raise InvalidSpec('tail value must be a positive integer or "all"')
    tail = int(raw)
    if tail < 0:
        raise InvalidSpec("negative tail values not supported")
    return tail


def _parse_int(text: str) -> int:
    """Go's strconv.ParseInt(text, 10, 64), with its error's words."""
    if not _INTEGER.fullmatch(text):
        raise InvalidSpec(
            f'could not parse since timestamp: strconv.ParseInt: parsing "{text}": invalid syntax'
        )
    value = int(text)
    if abs(value) > _MAX_INT64:
        raise InvalidSpec(
            "could not parse since timestamp: strconv.ParseInt: parsing"
            f' "{text}": value out of range'
        )
    return value


def parse_since(raw: str) -> str:
    """moby's timetypes.ParseTimestamps (unix ``seconds[.nanoseconds]``), as the engine reads
    it ('' for no bound)."""
    if not raw:
        return ""
    seconds, dot, fraction = raw.partition(".")
    whole = _parse_int(seconds)
    if not dot:
        return str(whole)
    nanos = _parse_int(fraction)
    # Go scales the digits to nanoseconds in floating point; exact here where it is exact.
    if len(fraction) <= 9:
        nanos *= 10 ** (9 - len(fraction))
    else:
        nanos = int(nanos * 10.0 ** (9 - len(fraction)))
    return f"{whole}.{nanos:09d}"


def streams_query(request: web.Request) -> tuple[bool, bool]:
    stdout, stderr = bool_query(request, "stdout"), bool_query(request, "stderr")
    if not (stdout or stderr):
        raise InvalidSpec("must specify at least one of 'stdout' or 'stderr'")
    return stdout, stderr


# What is written


def attrs_text(attrs: Iterable[tuple[str, str]]) -> bytes:
    """moby's attrsByteSlice: sorted by key, query-escaped, ``k=v`` joined by ``,``."""
    pairs = sorted(attrs, key=lambda pair: pair[0])
    return ",".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in pairs).encode()


def render(entry: LogEntry, node_id: str, *, timestamps: bool, details: bool) -> bytes:
    """One log message as the daemon writes it (without the stream's framing)."""
    line = base64.b64decode(entry.data)
    if details:
        # Swarm has the final say over the context keys, whatever the log driver added.
        attrs = [(k, v) for k, v in entry.attrs if k not in _CONTEXT_KEYS]
        attrs += [(NODE_KEY, node_id), (SERVICE_KEY, entry.service_id), (TASK_KEY, entry.task_id)]
        line = attrs_text(attrs) + b" " + line
    if timestamps:
        line = entry.timestamp.encode() + b" " + line
    return line


def frame(stream: int, payload: bytes) -> bytes:
    """One frame of Docker's multiplexed stream (stdcopy)."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


def content_type(request: web.Request, tty: bool) -> str:
    raw_version = request.match_info.get("api_version", "")
    version = raw_version.removeprefix("v") or API_VERSION
    if not tty and parse_version(version) >= (1, 42):
        return MULTIPLEXED
    return RAW


# The handlers


async def service_logs(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    stdout, stderr = streams_query(request)
    service = resolve("service", request.match_info["id"], store.all(Service), service_names)
    tty = bool(service.spec.task_template.container_spec.tty)
    return await _logs(request, store, ((service.id,), ()), tty, stdout, stderr)


async def task_logs(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    stdout, stderr = streams_query(request)
    task = resolve("task", request.match_info["id"], store.all(Task), task_names)
    tty = bool(task.spec.container_spec.tty)
    return await _logs(request, store, ((), (task.id,)), tty, stdout, stderr)


async def _logs(
    request: web.Request,
    store: Store,
    selected: tuple[Sequence[str], Sequence[str]],
    tty: bool,
    stdout: bool,
    stderr: bool,
) -> web.StreamResponse:
    options = LogOptions(
        follow=bool_query(request, "follow"),
        tail=parse_tail(request.query.get("tail", "")),
        since=parse_since(request.query.get("since", "")),
        stdout=stdout,
        stderr=stderr,
    )
    selector = LogSelector(tuple(selected[0]), tuple(selected[1]))
    response = web.StreamResponse(headers={"Content-Type": content_type(request, tty)})
    await response.prepare(request)
    broker = broker_for(store, clock_of(request))
    # The client may go away: the subscription is then cancelled on the nodes.
    with contextlib.suppress(ConnectionError):
        await _stream(request, response, broker, selector, options, tty=tty)
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    broker: LogBroker,
    selector: LogSelector,
    options: LogOptions,
    *,
    tty: bool,
) -> None:
    timestamps = bool_query(request, "timestamps")
    details = bool_query(request, "details")
    async with broker.subscribe(selector, options) as subscription:
        while (received := await subscription.next()) is not None:
            if not received and _client_gone(request):
                return
            chunks = []
            for node_id, entries in received:
                for entry in entries:
                    line = render(entry, node_id, timestamps=timestamps, details=details)
                    stream = STDERR if entry.stream == "stderr" else STDOUT
                    chunks.append(line if tty else frame(stream, line))
            if chunks:
                await response.write(b"".join(chunks))
        error = subscription.error()
        if error:
            text = f"Error grabbing logs: rpc error: code = Unknown desc = {error}\n".encode()
            await response.write(text if tty else frame(SYSTEMERR, text))


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
