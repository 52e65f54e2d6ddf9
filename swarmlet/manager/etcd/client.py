"""A thin client of a member's v3 gRPC API: health, the cluster's members, keys (single
ones, ranges, transactions), leases and watches, with etcd's own messages (the ``etcdserverpb``
stubs ``aetcd`` ships) over one HTTP/2 connection.

gRPC rather than the member's JSON gateway: a scheduler's pass writes thousands of objects in
one transaction, and the gateway's conversion of it (JSON and base64 both ways, in the member
and here) took three times as long as the transaction itself (docs/benchmarks.md, the notes
on issue 14's scale target).

Errors enter here: a member that cannot be reached, or answers with an error, raises
``Unavailable`` with etcd's message (``member add`` refused because the cluster is not yet
healthy enough is one: the caller tries again).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio
from aetcd.rpc import kv_pb2 as kv_pb
from aetcd.rpc import rpc_pb2 as pb
from aetcd.rpc import rpc_pb2_grpc as stubs

from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.config import MAX_REQUEST_BYTES, Peer
from swarmlet.manager.etcd.keeper import LeaseKeeper
from swarmlet.manager.etcd.tls import ClientTLS

REQUEST_TIMEOUT_S = 10.0
# Keys and leases ask for a leader (etcd's rpctypes.MetadataRequireLeaderKey): a member
# without one refuses at once ("etcdserver: no leader") instead of holding the request for
# etcd's own timeout (7 s), so a lost quorum is answered soon. Not the cluster's requests: a
# member lists its members without a leader.
_NEEDS_LEADER = (("hasleader", "true"),)
# A watch's one response holds a whole transaction: thousands of objects.
_MAX_MESSAGE = 4 * MAX_REQUEST_BYTES
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    # A member restarted (by its supervisor, or in a failover) is reached again within a
    # second, not after gRPC's default backoff of up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


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


def _member(raw: Any) -> MemberInfo:
    return MemberInfo(
        id=str(raw.ID),
        name=str(raw.name),
        peer_urls=tuple(raw.peerURLs),
        client_urls=tuple(raw.clientURLs),
        learner=bool(raw.isLearner),
    )


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


def _kv(raw: Any) -> KeyValue:
    return KeyValue(
        key=raw.key,
        value=raw.value,
        create_revision=raw.create_revision,
        mod_revision=raw.mod_revision,
    )


def _compare(compare: Compare) -> Any:
    if compare.target == "MOD":
        return pb.Compare(
            key=compare.key,
            target=pb.Compare.MOD,
            result=pb.Compare.EQUAL,
            mod_revision=compare.revision,
        )
    return pb.Compare(
        key=compare.key,
        target=pb.Compare.CREATE,
        result=pb.Compare.EQUAL,
        create_revision=compare.revision,
    )


def _op(op: Put | Delete) -> Any:
    if isinstance(op, Put):
        return pb.RequestOp(request_put=pb.PutRequest(key=op.key, value=op.value, lease=op.lease))
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=op.key))


def _watch_response(url: str, message: Any) -> WatchResponse | None:
    """One message of the watch stream; None for the one that says the watch was created."""
    if message.canceled:
        compacted = int(message.compact_revision)
        if compacted:
            raise Compacted(
                f"etcd at {url}: revision {compacted} and older are compacted", compacted
            )
        raise Unavailable(f"etcd at {url}: watch canceled: {message.cancel_reason}")
    if message.created:
        return None
    events = [
        WatchEvent(
            deleted=raw.type == kv_pb.Event.DELETE,
            kv=_kv(raw.kv),
            prev_kv=_kv(raw.prev_kv) if raw.HasField("prev_kv") else None,
        )
        for raw in message.events
    ]
    return WatchResponse(int(message.header.revision), events)


def _target(client_url: str) -> str:
    """gRPC's target for a member's client URL: its host and port."""
    netloc = urlsplit(client_url).netloc
    if not netloc:
        raise ValueError(f"not a member's client URL: {client_url!r}")
    return netloc


class EtcdClient:
    """A client of one member's ``client_url``, over TLS with ``tls`` (``tls.client_tls``).
    Close it, or use it as an async context manager. The connection is made on the first
    request, and again after the member restarts."""

    def __init__(self, client_url: str, tls: ClientTLS) -> None:
        self._url = client_url.rstrip("/")
        self._target = _target(client_url)
        self._credentials = grpc.ssl_channel_credentials(tls.trust, tls.key, tls.cert)
        self._channel = grpc.aio.secure_channel(
            self._target, self._credentials, options=_CHANNEL_OPTIONS
        )
        self._kv = stubs.KVStub(self._channel)
        self._watch = stubs.WatchStub(self._channel)
        self._lease = stubs.LeaseStub(self._channel)
        self._cluster = stubs.ClusterStub(self._channel)

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def _error(self, exc: grpc.aio.AioRpcError) -> Unavailable:
        said = exc.details() or exc.code().name
        return Unavailable(f"etcd at {self._url}: {said}")

    async def _call(self, method: Any, request: Any, *, leader: bool = True) -> Any:
        try:
            return await method(
                request,
                timeout=REQUEST_TIMEOUT_S,
                metadata=_NEEDS_LEADER if leader else None,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def healthy(self) -> bool:
        """Whether the member serves reads and knows a leader. A serializable read: a
        learner (a member that does not vote yet) refuses linearizable ones."""
        request = pb.RangeRequest(key=b"health", count_only=True, serializable=True)
        try:
            await self._call(self._kv.Range, request)
        except Unavailable:
            return False
        return True

    async def member_list(self) -> list[MemberInfo]:
        response = await self._call(self._cluster.MemberList, pb.MemberListRequest(), leader=False)
        return [_member(raw) for raw in response.members]

    async def member_add(
        self, peer_url: str, *, learner: bool = False
    ) -> tuple[MemberInfo, list[MemberInfo]]:
        """Add a member with ``peer_url`` to the cluster: the new member (no name yet) and
        every member after the add, for the new one's ``--initial-cluster``
        (``config.joining_member``). A learner does not count in the quorum until it is
        promoted (``member_promote``); etcd 3.4 holds one learner at a time."""
        request = pb.MemberAddRequest(peerURLs=[peer_url], isLearner=learner)
        response = await self._call(self._cluster.MemberAdd, request, leader=False)
        return _member(response.member), [_member(raw) for raw in response.members]

    async def member_promote(self, member_id: str) -> None:
        """Make a learner a voting member; etcd refuses until it has caught up with the
        leader's log ("can only promote a learner member which is in sync with leader")."""
        request = pb.MemberPromoteRequest(ID=int(member_id))
        await self._call(self._cluster.MemberPromote, request, leader=False)

    async def member_remove(self, member_id: str) -> None:
        request = pb.MemberRemoveRequest(ID=int(member_id))
        await self._call(self._cluster.MemberRemove, request, leader=False)

    async def put(self, key: bytes, value: bytes) -> int:
        """Write ``key``; the cluster's revision after the write."""
        response = await self._call(self._kv.Put, pb.PutRequest(key=key, value=value))
        return int(response.header.revision)

    async def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` (a linearizable read), None when there is none."""
        response = await self._call(self._kv.Range, pb.RangeRequest(key=key))
        return bytes(response.kvs[0].value) if response.kvs else None

    async def range(
        self, key: bytes, range_end: bytes | None = None, *, limit: int = 0, revision: int = 0
    ) -> RangeResult:
        """The keys from ``key`` to ``range_end`` (excluded; None: ``key`` alone) in key
        order, at most ``limit`` (0: all), at ``revision`` (0: now); a linearizable read."""
        request = pb.RangeRequest(
            key=key, range_end=range_end or b"", limit=limit, revision=revision
        )
        response = await self._call(self._kv.Range, request)
        return RangeResult(
            revision=int(response.header.revision),
            kvs=[_kv(raw) for raw in response.kvs],
            more=bool(response.more),
        )

    async def txn(self, compares: Sequence[Compare], success: Sequence[Put | Delete]) -> TxnResult:
        """If every compare holds, apply ``success`` atomically (one revision). etcd refuses
        a txn that puts or deletes one key twice, or has more operations than
        ``--max-txn-ops``."""
        request = pb.TxnRequest(
            compare=[_compare(c) for c in compares], success=[_op(o) for o in success]
        )
        response = await self._call(self._kv.Txn, request)
        return TxnResult(succeeded=bool(response.succeeded), revision=int(response.header.revision))

    async def watch(
        self, key: bytes, range_end: bytes | None, start_revision: int, *, prev_kv: bool = False
    ) -> AsyncIterator[WatchResponse]:
        """The changes to the keys from ``key`` to ``range_end``, from ``start_revision`` on,
        as etcd sends them, for as long as the caller follows. Raises ``Compacted`` when the
        start is compacted away, ``Unavailable`` when the stream breaks or ends."""
        create = pb.WatchCreateRequest(
            key=key, range_end=range_end or b"", start_revision=start_revision, prev_kv=prev_kv
        )
        # A stream, not timed: it lasts as long as it is followed.
        call = self._watch.Watch()
        try:
            await call.write(pb.WatchRequest(create_request=create))
            while (message := await call.read()) is not grpc.aio.EOF:
                if (parsed := _watch_response(self._url, message)) is not None:
                    yield parsed
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"etcd at {self._url}: the watch broke: {exc.details()}") from exc
        finally:
            call.cancel()
        raise Unavailable(f"etcd at {self._url}: the watch ended")

    async def lease_grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds: its ID."""
        response = await self._call(self._lease.LeaseGrant, pb.LeaseGrantRequest(TTL=ttl))
        return int(response.ID)

    def keep_alive(self, lease: int, period: float, *, within: float) -> LeaseKeeper:
        """Renew ``lease`` every ``period`` seconds, each renewal given ``within`` seconds,
        from a thread of its own, on a channel of its own, until the keeper is stopped
        (``keeper``: a busy event loop must not cost a manager its lease)."""
        channel = grpc.secure_channel(self._target, self._credentials, options=_CHANNEL_OPTIONS)
        return LeaseKeeper(channel, lease, period, within, _NEEDS_LEADER)

    async def lease_revoke(self, lease: int) -> None:
        """End the lease now, and every key on it."""
        await self._call(self._lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=lease))

    async def compact(self, revision: int) -> None:
        """Drop the history before ``revision``: a watch can no longer start before it."""
        await self._call(self._kv.Compact, pb.CompactionRequest(revision=revision))
