"""The store on each backend: memory, SQLite (plain and sealed) and etcd (sealed values), the
last on one real etcd member for the whole module, each test under a key prefix of its own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from swarmlet.clock import FakeClock
from swarmlet.manager.etcd import MemberConfig, client_tls
from swarmlet.manager.etcd.client import EtcdClient
from swarmlet.manager.store import Backend, MemoryBackend, Store
from swarmlet.manager.store.encryption import Cipher, new_dek
from swarmlet.manager.store.etcd import EtcdBackend
from swarmlet.manager.store.sqlite import SqliteBackend
from swarmlet.pki.ca import new_root
from tests.etcd_fixtures import etcd_binary_or_skip, one_member

BACKENDS = ["memory", "sqlite", "sqlite-encrypted", "etcd"]


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemberConfig]:
    binary = etcd_binary_or_skip()
    root = new_root(datetime.now(UTC))
    with one_member(binary, root, tmp_path_factory.mktemp("etcd")) as config:
        yield config


@pytest.fixture
async def etcd_client(etcd_member: MemberConfig) -> AsyncIterator[EtcdClient]:
    async with EtcdClient(etcd_member.client_url, client_tls(etcd_member)) as client:
        yield client


@pytest.fixture
def prefix() -> bytes:
    """A key prefix of the test's own: revisions are the etcd member's, keys are not shared."""
    return f"/test-{secrets.token_hex(6)}/".encode()


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, prefix: bytes
) -> AsyncIterator[Store]:
    backend: Backend
    client: EtcdClient | None = None
    if request.param == "memory":
        backend = MemoryBackend()
    elif request.param == "sqlite":
        backend = SqliteBackend(tmp_path / "s.db")
    elif request.param == "sqlite-encrypted":
        backend = SqliteBackend(tmp_path / "s.db", Cipher(new_dek()))
    else:
        member: MemberConfig = request.getfixturevalue("etcd_member")
        client = EtcdClient(member.client_url, client_tls(member))
        backend = EtcdBackend(client, Cipher(new_dek()), prefix)
    store = await Store.open(backend, FakeClock())
    yield store
    store.close()
    if client is not None:
        await client.close()
