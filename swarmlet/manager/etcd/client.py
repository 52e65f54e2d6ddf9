"""A thin client of a member's v3 JSON gateway (etcd's gRPC API as JSON over HTTPS):
health, the cluster's members, and single keys. Keys and values travel in base64, 64-bit
IDs as decimal strings, as the gateway writes them.

Errors enter here: a member that cannot be reached, or answers with an error, raises
``Unavailable`` with etcd's message (``member add`` refused because the cluster is not yet
healthy enough is one: the caller tries again).
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.config import Peer

REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MemberInfo:
    id: str  # etcd's member ID (uint64), in decimal
    name: str  # empty for a member added that has not started yet
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]

    def peers(self) -> list[Peer]:
        """The member as ``--initial-cluster`` names it (once for each peer URL)."""
        return [Peer(self.name, url) for url in self.peer_urls]


def _member(raw: dict[str, Any]) -> MemberInfo:
    return MemberInfo(
        id=str(raw.get("ID", "")),
        name=str(raw.get("name", "")),
        peer_urls=tuple(raw.get("peerURLs", ())),
        client_urls=tuple(raw.get("clientURLs", ())),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EtcdClient:
    """A client of one member's ``client_url``, over TLS with ``ssl_context``
    (``tls.client_ssl_context``). Close it, or use it as an async context manager."""

    def __init__(self, client_url: str, ssl_context: ssl.SSLContext) -> None:
        self._url = client_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        )

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def _request(self, method: str, path: str, body: object = None) -> Any:
        try:
            async with self._session.request(method, self._url + path, json=body) as response:
                payload = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"etcd at {self._url}: {exc}") from exc
        if status >= 400:
            said = payload if isinstance(payload, dict) else {}
            message = said.get("message") or said.get("error")
            raise Unavailable(f"etcd at {self._url}: {message or f'HTTP {status}'}")
        return payload

    async def healthy(self) -> bool:
        """Whether the member answers ``/health`` as healthy (it has a leader and serves)."""
        try:
            payload = await self._request("GET", "/health")
        except Unavailable:
            return False
        return isinstance(payload, dict) and payload.get("health") == "true"

    async def member_list(self) -> list[MemberInfo]:
        payload = await self._request("POST", "/v3/cluster/member/list", {})
        return [_member(raw) for raw in payload.get("members", ())]

    async def member_add(self, peer_url: str) -> tuple[MemberInfo, list[MemberInfo]]:
        """Add a member with ``peer_url`` to the cluster: the new member (no name yet) and
        every member after the add, for the new one's ``--initial-cluster``
        (``config.joining_member``)."""
        payload = await self._request("POST", "/v3/cluster/member/add", {"peerURLs": [peer_url]})
        return _member(payload["member"]), [_member(raw) for raw in payload.get("members", ())]

    async def member_remove(self, member_id: str) -> None:
        await self._request("POST", "/v3/cluster/member/remove", {"ID": member_id})

    async def put(self, key: bytes, value: bytes) -> int:
        """Write ``key``; the cluster's revision after the write."""
        payload = await self._request(
            "POST", "/v3/kv/put", {"key": _b64(key), "value": _b64(value)}
        )
        return int(payload["header"]["revision"])

    async def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` (a linearizable read), None when there is none."""
        payload = await self._request("POST", "/v3/kv/range", {"key": _b64(key)})
        kvs = payload.get("kvs", ())
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None
