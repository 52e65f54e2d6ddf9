"""The client's pieces decided without a member: prefix ranges and the watch stream's lines
(the client against a real member: tests/manager/store/test_etcd.py)."""

from __future__ import annotations

import pytest

from swarmlet.errors import Unavailable
from swarmlet.manager.etcd.client import Compacted, _watch_response, prefix_end

URL = "https://127.0.0.1:2379"


def test_a_prefix_range_ends_after_every_key_with_the_prefix() -> None:
    assert prefix_end(b"/swarmlet/") == b"/swarmlet0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"
    assert prefix_end(b"") == b"\0"


def test_watch_lines_become_responses_of_whole_events() -> None:
    created = b'{"result":{"header":{"revision":"3"},"created":true}}'
    assert _watch_response(URL, created) is None
    line = (
        b'{"result":{"header":{"revision":"5"},"events":['
        b'{"kv":{"key":"YQ==","create_revision":"4","mod_revision":"4","value":"MQ=="}},'
        b'{"type":"DELETE","kv":{"key":"Yg==","mod_revision":"5"}}]}}'
    )
    response = _watch_response(URL, line)
    assert response is not None
    assert response.revision == 5
    put, deleted = response.events
    assert (put.deleted, put.kv.key, put.kv.value, put.kv.mod_revision) == (False, b"a", b"1", 4)
    assert (deleted.deleted, deleted.kv.key, deleted.kv.mod_revision) == (True, b"b", 5)
    assert deleted.prev_kv is None


def test_a_compacted_or_broken_watch_raises() -> None:
    compacted = b'{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"7"}}'
    with pytest.raises(Compacted) as error:
        _watch_response(URL, compacted)
    assert error.value.compact_revision == 7
    with pytest.raises(Unavailable, match="no leader"):
        _watch_response(URL, b'{"error":{"grpc_code":14,"message":"no leader"}}')
    with pytest.raises(Unavailable, match="a watch sent"):
        _watch_response(URL, b"not json")
