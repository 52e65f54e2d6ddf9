"""A small async client for the Docker Engine API: what the agent needs to run tasks.

The agent talks to the host's engine (Docker, or Podman's Docker-compatible socket) through
``EngineClient``; tests use ``FakeEngine`` (``fake_engine.py``). Both satisfy ``Engine``, the
protocol of exactly the calls the worker makes. Errors are translated where they enter: the
engine's ``{"message": …}`` becomes ``EngineError(message, status)``, a 404 becomes ``NotFound``,
and an unreachable engine is ``EngineError(…, 0)``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote, urlsplit

import aiohttp

from swarmlet.agent.logframes import Demuxer, LogFrame
from swarmlet.errors import EngineError, NotFound

log = logging.getLogger(__name__)

# The newest API version this client speaks; an older engine lowers it (see ``_negotiate``).
MAX_API_VERSION = "1.45"
# Short calls get a deadline; waits, pulls and stops are as long as the engine needs.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
LONG_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)


@dataclass(frozen=True)
class ContainerInfo:
    """What the agent reads from a container's inspect."""

    id: str
    name: str
    state: str  # created, running, paused, restarting, removing, exited, dead
    labels: Mapping[str, str] = field(default_factory=dict)
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    # The path of its network namespace, while it runs (NetworkSettings.SandboxKey).
    sandbox_key: str = ""
    # State.Health.Status: "starting", "healthy" or "unhealthy" while a healthcheck (the
    # container's or its image's) runs; "" when it has none.
    health: str = ""
    # NetworkSettings.Ports: "80/tcp" -> the host addresses and ports it is bound to.
    ports: Mapping[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused", "restarting")

    @property
    def exited(self) -> bool:
        return self.state in ("exited", "dead")


@dataclass(frozen=True)
class ContainerSummary:
    """One row of the container list."""

    id: str
    name: str
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)


class Engine(Protocol):
    """The engine calls the agent makes; ``EngineClient`` and ``FakeEngine`` implement them."""

    async def info(self) -> dict[str, Any]: ...

    async def inspect_image(self, ref: str) -> dict[str, Any]:
        """Raises NotFound when the image is not present locally."""
        ...

    async def pull_image(self, ref: str) -> None: ...

    async def create_container(
        self, name: str, config: Mapping[str, Any], host_config: Mapping[str, Any]
    ) -> str:
        """Returns the new container's ID."""
        ...

    async def start_container(self, container_id: str) -> None: ...

    async def wait_container(self, container_id: str) -> int:
        """Blocks until the container is not running; returns its exit code."""
        ...

    async def inspect_container(self, container_id: str) -> ContainerInfo: ...

    async def stop_container(self, container_id: str, grace: int | None = None) -> None:
        """Sends the container's stop signal, then SIGKILL after ``grace`` seconds (the
        container's own StopTimeout when None)."""
        ...

    async def remove_container(self, container_id: str, force: bool = True) -> None: ...

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """Every container (running or not) carrying all of ``labels``."""
        ...

    def watch_health(self, container_id: str) -> AsyncIterator[str]:
        """The container's health (``ContainerInfo.health``) as the engine reports it: first
        its current one, read once the engine's event stream is open (so no change between
        the two is missed), then every ``health_status`` event's, until the stream ends."""
        ...


def split_reference(ref: str) -> tuple[str, str]:
    """``fromImage`` and ``tag`` for a pull: a bare name means ``latest``, not every tag."""
    if "@" in ref:
        return ref, ""
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, "latest"


def _lower_version(a: str, b: str) -> str:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(part) for part in v.split("."))

    return min(a, b, key=key)


def _container_info(data: Mapping[str, Any]) -> ContainerInfo:
    state = data.get("State") or {}
    config = data.get("Config") or {}
    return ContainerInfo(
        id=data["Id"],
        name=str(data.get("Name", "")).lstrip("/"),
        state=state.get("Status", ""),
        labels=config.get("Labels") or {},
        pid=state.get("Pid") or 0,
        exit_code=state.get("ExitCode") or 0,
        error=state.get("Error") or "",
        sandbox_key=(data.get("NetworkSettings") or {}).get("SandboxKey") or "",
        ports=(data.get("NetworkSettings") or {}).get("Ports") or {},
        health=(state.get("Health") or {}).get("Status") or "",
    )


class EngineClient:
    """The Engine API over a unix socket (``unix:///var/run/docker.sock``) or TCP
    (``tcp://host:2375``). Open it with ``async with`` or call ``close()``."""

    def __init__(self, url: str = "unix:///var/run/docker.sock") -> None:
        self.url = url
        parts = urlsplit(url)
        self._socket_path: str | None = None
        if parts.scheme == "unix":
            self._socket_path = parts.path
            self._base = "http://docker"
        elif parts.scheme in ("tcp", "http"):
            self._base = f"http://{parts.netloc}"
        else:
            raise ValueError(f"unsupported docker host {url!r}: use unix:// or tcp://")
        self._session: aiohttp.ClientSession | None = None
        self._prefix: str | None = None
        self._negotiating = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def api_version(self) -> str | None:
        """The negotiated version, once the first call has made it."""
        return self._prefix.removeprefix("/v") if self._prefix else None

    # -- what the agent calls ---------------------------------------------------------------

    async def ping(self) -> str:
        """The engine's Api-Version (from ``/_ping``), or "" when it does not say."""
        async with self._raw("GET", "/_ping", versioned=False) as resp:
            await resp.read()
            return resp.headers.get("Api-Version", "")

    async def version(self) -> dict[str, Any]:
        return await self._json("GET", "/version")  # type: ignore[no-any-return]

    async def info(self) -> dict[str, Any]:
        return await self._json("GET", "/info")  # type: ignore[no-any-return]

    async def inspect_image(self, ref: str) -> dict[str, Any]:
        return await self._json("GET", f"/images/{quote(ref, safe='/:@')}/json")  # type: ignore[no-any-return]

    async def pull_image(self, ref: str) -> None:
        from_image, tag = split_reference(ref)
        params = {"fromImage": from_image, **({"tag": tag} if tag else {})}
        async with self._raw(
            "POST", "/images/create", params=params, deadline=LONG_TIMEOUT
        ) as resp:
            await _read_progress(resp)

    async def import_image(
        self, source: bytes, repo: str, tag: str, changes: Sequence[str] = ()
    ) -> None:
        """``docker import``: an image whose root filesystem is the tar ``source``, with
        Dockerfile instructions ``changes`` (``CMD [...]``) applied."""
        params = [("fromSrc", "-"), ("repo", repo), ("tag", tag)]
        params += [("changes", change) for change in changes]
        async with self._raw(
            "POST",
            "/images/create",
            params=params,
            # A stream: aiohttp frowns on a large body given as bytes.
            data=io.BytesIO(source),
            content_type="application/x-tar",
            deadline=LONG_TIMEOUT,
        ) as resp:
            await _read_progress(resp)

    async def create_container(
        self, name: str, config: Mapping[str, Any], host_config: Mapping[str, Any]
    ) -> str:
        body = {**config, "HostConfig": dict(host_config)}
        created = await self._json("POST", "/containers/create", params={"name": name}, body=body)
        for warning in created.get("Warnings") or []:
            log.warning("creating container %s: %s", name, warning)
        return str(created["Id"])

    async def start_container(self, container_id: str) -> None:
        # 304: already started, which is what was asked for.
        await self._json("POST", f"/containers/{container_id}/start")

    async def wait_container(self, container_id: str) -> int:
        result = await self._json("POST", f"/containers/{container_id}/wait", deadline=LONG_TIMEOUT)
        error = (result.get("Error") or {}).get("Message")
        if error:
            raise EngineError(error, 500)
        return int(result["StatusCode"])

    async def inspect_container(self, container_id: str) -> ContainerInfo:
        return _container_info(await self._json("GET", f"/containers/{container_id}/json"))

    async def stop_container(self, container_id: str, grace: int | None = None) -> None:
        params = {"t": str(grace)} if grace is not None else None
        await self._json(
            "POST", f"/containers/{container_id}/stop", params=params, deadline=LONG_TIMEOUT
        )

    async def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        await self._json("POST", f"/containers/{container_id}/kill", params={"signal": signal})

    async def remove_container(self, container_id: str, force: bool = True) -> None:
        params = {"force": "1" if force else "0", "v": "1"}
        await self._json("DELETE", f"/containers/{container_id}", params=params)

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})
        rows = await self._json("GET", "/containers/json", params={"all": "1", "filters": filters})
        return [
            ContainerSummary(
                id=row["Id"],
                name=(row.get("Names") or [""])[0].lstrip("/"),
                state=row.get("State", ""),
                labels=row.get("Labels") or {},
            )
            for row in rows
        ]

    async def container_events(self, actions: Sequence[str]) -> AsyncIterator[dict[str, Any]]:
        """The engine's container events of these actions, as they come, until the stream ends
        (the engine stopped)."""
        params = {"filters": json.dumps({"type": ["container"], "event": list(actions)})}
        async with self._raw("GET", "/events", params=params, deadline=LONG_TIMEOUT) as resp:
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)

    async def watch_health(self, container_id: str) -> AsyncIterator[str]:
        # "health_status" matches the events' "health_status: healthy" (the engine matches
        # that action by prefix).
        filters = {"type": ["container"], "event": ["health_status"], "container": [container_id]}
        params = {"filters": json.dumps(filters)}
        async with self._raw("GET", "/events", params=params, deadline=LONG_TIMEOUT) as resp:
            # The stream is open (its headers came): a change from now on is in it.
            yield (await self.inspect_container(container_id)).health
            async for line in resp.content:
                if not line.strip():
                    continue
                action = str(json.loads(line).get("Action") or "")
                if action.startswith("health_status:"):
                    yield action.partition(":")[2].strip()

    async def container_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: str, streams: str
    ) -> AsyncGenerator[list[LogFrame], None]:
        """The container's log messages (``swarmlet.agent.logframes``: with timestamps and
        details), a list of frames as each chunk comes; ``streams``: "stdout", "stderr" or
        both ("stdout,stderr"); ``tail``: the last lines only; ``since``: unix seconds."""
        inspected = await self._json("GET", f"/containers/{container_id}/json")
        raw = bool((inspected.get("Config") or {}).get("Tty"))
        params = {
            "follow": "1" if follow else "0",
            "stdout": "1" if "stdout" in streams else "0",
            "stderr": "1" if "stderr" in streams else "0",
            "timestamps": "1",
            "details": "1",
            "tail": "all" if tail is None else str(tail),
            **({"since": since} if since else {}),
        }
        path = f"/containers/{container_id}/logs"
        async with self._raw("GET", path, params=params, deadline=LONG_TIMEOUT) as resp:
            demuxer = Demuxer(raw=raw)
            async for chunk in resp.content.iter_any():
                frames = demuxer.feed(chunk)
                if frames:
                    yield frames
            rest = demuxer.end()
            if rest:
                yield rest

    # -- the engine's networks (swarmlet.agent.local_networks) -------------------------------

    async def list_networks(self, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        params = {"filters": json.dumps(dict(filters))}
        return await self._json("GET", "/networks", params=params)  # type: ignore[no-any-return]

    async def create_network(self, body: Mapping[str, Any]) -> str:
        created = await self._json("POST", "/networks/create", body=dict(body))
        return str(created["Id"])

    async def remove_network(self, network_id: str) -> None:
        await self._json("DELETE", f"/networks/{network_id}")

    async def connect_network(
        self, network_id: str, container_id: str, endpoint: Mapping[str, Any]
    ) -> None:
        body = {"Container": container_id, "EndpointConfig": dict(endpoint)}
        await self._json("POST", f"/networks/{network_id}/connect", body=body)

    # -- plumbing ---------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the running event loop.
        if self._session is None:
            # No connection limit: every running task holds one for its long-polled wait.
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(path=self._socket_path, limit=0)
                if self._socket_path is not None
                else aiohttp.TCPConnector(limit=0)
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=DEFAULT_TIMEOUT)
        return self._session

    async def _negotiate(self) -> str:
        """Pin the path prefix to the lower of our version and the engine's."""
        async with self._negotiating:
            if self._prefix is None:
                theirs = await self.ping()
                version = _lower_version(theirs, MAX_API_VERSION) if theirs else MAX_API_VERSION
                self._prefix = f"/v{version}"
            return self._prefix

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        deadline: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> Any:
        async with self._raw(method, path, params=params, body=body, deadline=deadline) as resp:
            if resp.status in (204, 304):
                return None
            data = await resp.read()
            return json.loads(data) if data else None

    @asynccontextmanager
    async def _raw(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        data: io.BytesIO | None = None,
        content_type: str | None = None,
        deadline: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        versioned: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        prefix = await self._negotiate() if versioned else ""
        url = f"{self._base}{prefix}{path}"
        headers = {"Content-Type": content_type} if content_type else None
        try:
            async with self._client().request(
                method,
                url,
                params=params,
                json=body,
                data=data,
                headers=headers,
                timeout=deadline,
            ) as resp:
                if resp.status >= 400:
                    raise await _error(resp)
                yield resp
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise EngineError(f"cannot reach the engine at {self.url}: {exc}", 0) from exc


async def _read_progress(resp: aiohttp.ClientResponse) -> None:
    """Read a pull's or an import's progress stream to its end: it is a JSON object a line,
    and a failure midway arrives as one of them (``{"error": …}``) after a 200."""
    async for line in resp.content:
        text = line.strip()
        if not text:
            continue
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("error"):
            raise EngineError(str(event["error"]), resp.status)


async def _error(resp: aiohttp.ClientResponse) -> EngineError | NotFound:
    text = (await resp.text()).strip()
    try:
        message = str(json.loads(text)["message"])
    except (ValueError, KeyError, TypeError):
        message = text or resp.reason or f"HTTP {resp.status}"
    if resp.status == 404:
        return NotFound(message)
    return EngineError(message, resp.status)
