"""The few Engine API calls the lab makes, over unix sockets, to swarmletd and to engines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp

from swarmlet.lab.system import LabError

T = TypeVar("T")


class ApiError(LabError):
    """The daemon answered with an error status."""

    def __init__(self, message: str, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message  # the daemon's own message


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code, even inside a running event loop.

    The lab's Python API is synchronous so that the CLI and pytest fixtures can call it; an
    async test calling it would otherwise hit "asyncio.run() cannot be called from a running
    event loop", so then the coroutine gets a loop of its own in a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarmlet-lab") as pool:
        return pool.submit(asyncio.run, coro).result()


def socket_path(docker_host: str) -> Path:
    if not docker_host.startswith("unix://"):
        raise LabError(f"the lab speaks to unix sockets only, not {docker_host}")
    return Path(docker_host.removeprefix("unix://"))


async def request(
    docker_host: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, str] | None = None,
) -> Any:
    """One call; returns the decoded JSON body (or None); raises ApiError on an error status.

    It has no deadline of its own: callers bound it with `within` (or `asyncio.timeout`).
    """
    connector = aiohttp.UnixConnector(path=str(socket_path(docker_host)))
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, f"http://lab{path}", json=body, params=params) as response,
        ):
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, OSError) as exc:
        raise LabError(f"{method} {path} on {docker_host}: {exc or type(exc).__name__}") from exc
    data = _decode(text)
    if status >= 400:
        message = data.get("message", text) if isinstance(data, dict) else text
        where = f"{method} {path} on {docker_host}: {status}"
        raise ApiError(f"{where} {message}".strip(), status, str(message).strip())
    return data


def _decode(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


async def within(seconds: float, failure: str, awaitable: Awaitable[T]) -> T:
    """Await with a deadline; past it, raise LabError saying `failure` and the deadline."""
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise LabError(f"{failure} within {seconds:.0f} s") from None


async def ping(docker_host: str) -> bool:
    try:
        async with asyncio.timeout(2):
            await request(docker_host, "GET", "/_ping")
    except (LabError, TimeoutError):
        return False
    return True


async def wait_ping(docker_host: str, *, alive: Callable[[], bool], what: str) -> None:
    """Wait until `docker_host` answers /_ping; fail at once if `alive()` says it has died."""
    while not await ping(docker_host):
        if not alive():
            raise LabError(f"{what} exited before it answered on {docker_host}")
        await asyncio.sleep(0.1)


async def swarm_init(docker_host: str, listen_addr: str, advertise_addr: str) -> None:
    body = {"ListenAddr": listen_addr, "AdvertiseAddr": advertise_addr}
    await request(docker_host, "POST", "/swarm/init", body)


async def worker_token(docker_host: str) -> str:
    return await join_token(docker_host, "Worker")


async def join_token(docker_host: str, role: Literal["Worker", "Manager"]) -> str:
    """The swarm's join token for ``role``, from ``GET /swarm`` on a manager."""
    swarm = await request(docker_host, "GET", "/swarm")
    try:
        return str(swarm["JoinTokens"][role])
    except (KeyError, TypeError) as exc:
        raise LabError(f"GET /swarm on {docker_host} has no JoinTokens.{role}: {swarm}") from exc


async def swarm_join(
    docker_host: str, remote_addr: str, token: str, listen_addr: str, advertise_addr: str
) -> None:
    body = {
        "RemoteAddrs": [remote_addr],
        "JoinToken": token,
        "ListenAddr": listen_addr,
        "AdvertiseAddr": advertise_addr,
    }
    await request(docker_host, "POST", "/swarm/join", body)


async def node_states(docker_host: str) -> list[str]:
    """Each node's Status.State as the manager sees it."""
    nodes = await request(docker_host, "GET", "/nodes")
    return [str(node.get("Status", {}).get("State")) for node in nodes or []]


async def wait_nodes_ready(docker_host: str, count: int) -> None:
    while True:
        states = await node_states(docker_host)
        if len(states) == count and all(state == "ready" for state in states):
            return
        await asyncio.sleep(0.25)


async def labelled_containers(docker_host: str, label: str) -> list[str]:
    """The IDs of every container, running or not, carrying `label` (`key=value`)."""
    query = {"all": "1", "filters": json.dumps({"label": [label]})}
    listed = await request(docker_host, "GET", "/containers/json", params=query)
    return [str(container["Id"]) for container in listed or []]


async def remove_labelled_containers(docker_host: str, label: str) -> list[str]:
    """Remove (forcibly, with their anonymous volumes) every container carrying `label`."""
    ids = await labelled_containers(docker_host, label)
    for container_id in ids:
        try:
            path = f"/containers/{container_id}"
            await request(docker_host, "DELETE", path, params={"force": "1", "v": "1"})
        except ApiError as exc:
            if exc.status != 404:  # 404: it went away meanwhile, as we asked
                raise
    return ids


async def remove_networks_of(docker_host: str, drivers: Sequence[str]) -> list[str]:
    """Remove every engine network whose driver is one of ``drivers`` (the lab hosts' network
    plugins); returns their names."""
    listed = await request(docker_host, "GET", "/networks")
    removed = []
    for network in listed or []:
        if network.get("Driver") in drivers:
            try:
                await _remove_network(docker_host, str(network["Id"]))
            except ApiError as exc:
                # The engine miscounts a network's endpoints when many containers on it are
                # removed at once ("has active endpoints" with none left), until it restarts:
                # the rest still goes; `leftovers` names what stayed.
                print(f"lab: engine network {network.get('Name')}: {exc}", file=sys.stderr)
                continue
            removed.append(str(network.get("Name")))
    return removed


async def _remove_network(docker_host: str, network_id: str) -> None:
    """Remove a network, first taking off it whatever container a test left there."""
    path = f"/networks/{network_id}"
    try:
        await request(docker_host, "DELETE", path)
        return
    except ApiError as exc:
        if exc.status == 404:
            return
        if exc.status != 403:  # 403: it has active endpoints
            raise
    shown = await request(docker_host, "GET", path)
    for container in (shown or {}).get("Containers") or {}:
        body = {"Container": container, "Force": True}
        with contextlib.suppress(ApiError):
            await request(docker_host, "POST", f"{path}/disconnect", body=body)
    await request(docker_host, "DELETE", path)
