"""The client's pieces decided without a member: prefix ranges, the member's gRPC target and
the watch stream's messages (the client against a real member: tests/manager/store/test_etcd.py
and tests/manager/etcd/test_member.py)."""

from __future__ import annotations

import pytest
from aetcd.rpc import kv_pb2 as kv_pb
from aetcd.rpc import rpc_pb2 as pb

from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.client import Compacted, _target, _watch_response, prefix_end

URL = "https://127.0.0.1:2379"


def test_a_prefix_range_ends_after_every_key_with_the_prefix() -> None:
    assert prefix_end(b"/swarmlet/") == b"/swarmlet0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"
    assert prefix_end(b"") == b"\0"


def test_the_target_is_the_client_urls_host_and_port() -> None:
    assert _target("https://192.168.246.11:2379") == "192.168.246.11:2379"
    assert _target("https://[fd00::1]:2379/") == "[fd00::1]:2379"
    with pytest.raises(ValueError, match="client URL"):
        _target("192.168.246.11:2379")


def test_watch_messages_become_responses_of_whole_events() -> None:
    created = pb.WatchResponse(header=pb.ResponseHeader(revision=3), created=True)
    assert _watch_response(URL, created) is None
    message = pb.WatchResponse(
        header=pb.ResponseHeader(revision=5),
        events=[
            kv_pb.Event(kv=kv_pb.KeyValue(key=b"a", value=b"1", create_revision=4, mod_revision=4)),
            kv_pb.Event(type=kv_pb.Event.DELETE, kv=kv_pb.KeyValue(key=b"b", mod_revision=5)),
        ],
    )
    response = _watch_response(URL, message)
    assert response is not None
    assert response.revision == 5
    put, deleted = response.events
    assert (put.deleted, put.kv.key, put.kv.value, put.kv.mod_revision) == (False, b"a", b"1", 4)
    assert put.kv.create_revision == 4
    assert (deleted.deleted, deleted.kv.key, deleted.kv.mod_revision) == (True, b"b", 5)
    assert deleted.prev_kv is None


def test_a_compacted_or_cancelled_watch_raises() -> None:
    compacted = pb.WatchResponse(
        header=pb.ResponseHeader(revision=9), canceled=True, compact_revision=7
    )
    with pytest.raises(Compacted) as error:
        _watch_response(URL, compacted)
    assert error.value.compact_revision == 7
    cancelled = pb.WatchResponse(canceled=True, cancel_reason="etcdserver: no leader")
    with pytest.raises(Unavailable, match="no leader"):
        _watch_response(URL, cancelled)
