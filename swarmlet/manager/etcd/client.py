"""A thin client of a member's v3 JSON gateway (etcd's gRPC API as JSON over HTTPS):
health, the cluster's members, keys (single ones, ranges, transactions) and watches. Keys and
values travel in base64, 64-bit IDs and revisions as decimal strings, as the gateway writes
them.

Errors enter here: a member that cannot be reached, or answers with an error, raises
``Unavailable`` with etcd's message (``member add`` refused because the cluster is not yet
healthy enough is one: the caller tries again).
"""

from __future__ import annotations

import base64
import io
import json
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.config import Peer

REQUEST_TIMEOUT_S = 10.0
# A watch is a stream that lasts as long as it is followed: only its connection is timed.
_WATCH_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=REQUEST_TIMEOUT_S)


_JSON = {"Content-Type": "application/json"}
# Keys and leases ask for a leader (etcd's rpctypes.MetadataRequireLeaderKey, passed on by the
# gateway as gRPC metadata): a member without one refuses at once ("etcdserver: no leader")
# instead of holding the request for etcd's own timeout (7 s), so a lost quorum is answered
# soon. Not the cluster's requests: a member lists its members without a leader.
_NEEDS_LEADER = {**_JSON, "Grpc-Metadata-hasleader": "true"}
_LEADER_PATHS = ("/v3/kv/", "/v3/lease/")
# A connection closed before its response was read whole (a watch stopped) ends with a TLS
# shutdown the peer may never answer; before Python 3.12.8 (cpython#118960) its socket then
# stays open unless aiohttp aborts it (on the newer ones aiohttp warns that it need not).
_NEEDS_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)


class Compacted(Unavailable):
    """A watch asked to start at a revision etcd has compacted away."""

    def __init__(self, message: str, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class RangeResult:
    revision: int  # the revision the range was read at
    kvs: list[KeyValue]
    more: bool  # a limit left keys out


@dataclass(frozen=True, slots=True)
class Compare:
    """A txn's condition: ``key``'s ``mod_revision`` (target ``MOD``) or ``create_revision``
    (``CREATE``; 0 when the key does not exist) equals ``revision``."""

    key: bytes
    target: str
    revision: int

    @classmethod
    def modified_at(cls, key: bytes, revision: int) -> Compare:
        return cls(key, "MOD", revision)

    @classmethod
    def absent(cls, key: bytes) -> Compare:
        return cls(key, "CREATE", 0)


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0  # a lease's ID: the key goes when the lease ends (0: none)


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int  # the txn's revision (when it wrote), else the cluster's revision


@dataclass(frozen=True, slots=True)
class WatchEvent:
    deleted: bool
    kv: KeyValue  # a delete's carries only the key and the revision of the delete
    prev_kv: KeyValue | None  # with ``prev_kv``: the key as it was before


@dataclass(frozen=True, slots=True)
class WatchResponse:
    revision: int  # the header's: the cluster's revision when it was sent
    events: list[WatchEvent]  # in revision order; several revisions may share a response


@dataclass(frozen=True)
class MemberInfo:
    id: str  # etcd's member ID (uint64), in decimal
    name: str  # empty for a member added that has not started yet
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool = False  # a member that follows the log but does not vote (not yet)

    def peers(self) -> list[Peer]:
        """The member as ``--initial-cluster`` names it (once for each peer URL)."""
        return [Peer(self.name, url) for url in self.peer_urls]


def _member(raw: dict[str, Any]) -> MemberInfo:
    return MemberInfo(
        id=str(raw.get("ID", "")),
        name=str(raw.get("name", "")),
        peer_urls=tuple(raw.get("peerURLs", ())),
        client_urls=tuple(raw.get("clientURLs", ())),
        learner=bool(raw.get("isLearner", False)),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a range (or a watch) of every key starting with
    ``prefix`` (etcd's GetPrefixRangeEnd); ``b"\\0"`` (every key) for an empty one."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(raw.get("key", "")),
        value=base64.b64decode(raw.get("value", "")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
    )


def _compare(compare: Compare) -> dict[str, str]:
    field = {"MOD": "mod_revision", "CREATE": "create_revision"}[compare.target]
    return {
        "key": _b64(compare.key),
        "target": compare.target,
        "result": "EQUAL",
        field: str(compare.revision),
    }


def _op(op: Put | Delete) -> dict[str, Any]:
    if isinstance(op, Put):
        put = {"key": _b64(op.key), "value": _b64(op.value)}
        if op.lease:
            put["lease"] = str(op.lease)
        return {"request_put": put}
    return {"request_delete_range": {"key": _b64(op.key)}}


def _watch_response(url: str, line: bytes) -> WatchResponse | None:
    """One line of the watch stream; None for the line that says the watch was created."""
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise Unavailable(f"etcd at {url}: a watch sent {line[:100]!r}: {exc}") from exc
    if "error" in message:
        error = message["error"]
        said = error.get("message") if isinstance(error, dict) else error
        raise Unavailable(f"etcd at {url}: {said}")
    result = message.get("result", {})
    revision = int(result.get("header", {}).get("revision", 0))
    if result.get("canceled"):
        compacted = int(result.get("compact_revision", 0))
        if compacted:
            raise Compacted(
                f"etcd at {url}: revision {compacted} and older are compacted", compacted
            )
        raise Unavailable(f"etcd at {url}: watch canceled: {result.get('cancel_reason', '')}")
    if result.get("created"):
        return None
    events = [
        WatchEvent(
            deleted=raw.get("type") == "DELETE",
            kv=_kv(raw.get("kv", {})),
            prev_kv=_kv(raw["prev_kv"]) if "prev_kv" in raw else None,
        )
        for raw in result.get("events", ())
    ]
    return WatchResponse(revision, events)


class EtcdClient:
    """A client of one member's ``client_url``, over TLS with ``ssl_context``
    (``tls.client_ssl_context``). Close it, or use it as an async context manager."""

    def __init__(self, client_url: str, ssl_context: ssl.SSLContext) -> None:
        self._url = client_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                ssl=ssl_context, enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED
            ),
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
            # A buffer, not bytes: aiohttp warns of bodies over 1 MB given whole (a txn of
            # thousands of objects is tens of MB).
            data = io.BytesIO(json.dumps(body).encode()) if body is not None else None
            headers = _NEEDS_LEADER if path.startswith(_LEADER_PATHS) else _JSON
            async with self._session.request(
                method, self._url + path, data=data, headers=headers
            ) as response:
                payload = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"etcd at {self._url}: {exc}") from exc
        self._check(status, payload)
        return payload

    def _check(self, status: int, payload: Any) -> None:
        if status >= 400:
            said = payload if isinstance(payload, dict) else {}
            message = said.get("message") or said.get("error")
            raise Unavailable(f"etcd at {self._url}: {message or f'HTTP {status}'}")

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

    async def member_add(
        self, peer_url: str, *, learner: bool = False
    ) -> tuple[MemberInfo, list[MemberInfo]]:
        """Add a member with ``peer_url`` to the cluster: the new member (no name yet) and
        every member after the add, for the new one's ``--initial-cluster``
        (``config.joining_member``). A learner does not count in the quorum until it is
        promoted (``member_promote``); etcd 3.4 holds one learner at a time."""
        body = {"peerURLs": [peer_url], "isLearner": learner}
        payload = await self._request("POST", "/v3/cluster/member/add", body)
        return _member(payload["member"]), [_member(raw) for raw in payload.get("members", ())]

    async def member_promote(self, member_id: str) -> None:
        """Make a learner a voting member; etcd refuses until it has caught up with the
        leader's log ("can only promote a learner member which is in sync with leader")."""
        await self._request("POST", "/v3/cluster/member/promote", {"ID": member_id})

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

    async def range(
        self, key: bytes, range_end: bytes | None = None, *, limit: int = 0, revision: int = 0
    ) -> RangeResult:
        """The keys from ``key`` to ``range_end`` (excluded; None: ``key`` alone) in key
        order, at most ``limit`` (0: all), at ``revision`` (0: now); a linearizable read."""
        body: dict[str, str] = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        if limit:
            body["limit"] = str(limit)
        if revision:
            body["revision"] = str(revision)
        payload = await self._request("POST", "/v3/kv/range", body)
        return RangeResult(
            revision=int(payload["header"]["revision"]),
            kvs=[_kv(raw) for raw in payload.get("kvs", ())],
            more=bool(payload.get("more", False)),
        )

    async def txn(self, compares: Sequence[Compare], success: Sequence[Put | Delete]) -> TxnResult:
        """If every compare holds, apply ``success`` atomically (one revision). etcd refuses
        a txn that puts or deletes one key twice, or has more operations than
        ``--max-txn-ops``."""
        body = {"compare": [_compare(c) for c in compares], "success": [_op(o) for o in success]}
        payload = await self._request("POST", "/v3/kv/txn", body)
        return TxnResult(
            succeeded=bool(payload.get("succeeded", False)),
            revision=int(payload["header"]["revision"]),
        )

    async def watch(
        self, key: bytes, range_end: bytes | None, start_revision: int, *, prev_kv: bool = False
    ) -> AsyncIterator[WatchResponse]:
        """The changes to the keys from ``key`` to ``range_end``, from ``start_revision`` on,
        as etcd sends them, for as long as the caller follows. Raises ``Compacted`` when the
        start is compacted away, ``Unavailable`` when the stream breaks or ends."""
        request: dict[str, Any] = {"key": _b64(key), "start_revision": str(start_revision)}
        if range_end is not None:
            request["range_end"] = _b64(range_end)
        if prev_kv:
            request["prev_kv"] = True
        url = self._url + "/v3/watch"
        try:
            async with self._session.post(
                url, json={"create_request": request}, timeout=_WATCH_TIMEOUT
            ) as response:
                if response.status >= 400:
                    self._check(response.status, await response.json(content_type=None))
                # Lines can be far longer than aiohttp's readline allows (a transaction of
                # thousands of objects is one response): split them here.
                parts: list[bytes] = []
                async for chunk in response.content.iter_any():
                    if b"\n" not in chunk:
                        parts.append(chunk)
                        continue
                    *lines, rest = b"".join([*parts, chunk]).split(b"\n")
                    parts = [rest]
                    for line in lines:
                        if line.strip() and (parsed := _watch_response(self._url, line)):
                            yield parsed
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"etcd at {self._url}: the watch broke: {exc}") from exc
        raise Unavailable(f"etcd at {self._url}: the watch ended")

    async def lease_grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds: its ID."""
        payload = await self._request("POST", "/v3/lease/grant", {"TTL": str(ttl)})
        return int(payload["ID"])

    async def lease_keepalive(self, lease: int) -> int:
        """Renew the lease: the seconds it has left (0: it has expired)."""
        payload = await self._request("POST", "/v3/lease/keepalive", {"ID": str(lease)})
        # The gateway answers the stream's one message as {"result": {...}}; an expired
        # lease's answer has no TTL.
        return int(payload.get("result", {}).get("TTL", 0))

    async def lease_revoke(self, lease: int) -> None:
        """End the lease now, and every key on it."""
        await self._request("POST", "/v3/lease/revoke", {"ID": str(lease)})

    async def compact(self, revision: int) -> None:
        """Drop the history before ``revision``: a watch can no longer start before it."""
        await self._request("POST", "/v3/kv/compaction", {"revision": str(revision)})
