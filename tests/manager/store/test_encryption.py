"""Encryption at rest: the cipher, unlock keys, the key file, and a sealed SQLite store."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from swarmlet.clock import FakeClock
from swarmlet.errors import CannotDecrypt, Conflict, InvalidSpec, Locked, NotFound, Unauthorized
from swarmlet.manager.store import Op, Store
from swarmlet.manager.store.encryption import (
    INVALID_UNLOCK_KEY,
    Cipher,
    create_key_file,
    key_file_sealed,
    new_dek,
    new_unlock_key,
    parse_unlock_key,
    read_dek,
    rekey_key_file,
    write_key_file,
)
from swarmlet.manager.store.sqlite import SqliteBackend
from swarmlet.models import Service, ServiceSpec

MARKER = "plaintext-marker-7f3a9c"
# The Engine API's own example of an unlock key.
API_EXAMPLE_KEY = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8"


# The cipher


def test_cipher_round_trip_with_a_fresh_nonce_each_time() -> None:
    cipher = Cipher(new_dek())
    first, second = cipher.seal(b"hello"), cipher.seal(b"hello")
    assert first != second
    assert b"hello" not in first
    assert cipher.open(first) == cipher.open(second) == b"hello"
    assert cipher.open(cipher.seal(b"")) == b""


def test_a_tampered_message_does_not_open() -> None:
    cipher = Cipher(new_dek())
    sealed = bytearray(cipher.seal(b"the cluster"))
    for index in (1, 13, len(sealed) - 1):  # the nonce, the ciphertext, the tag
        altered = bytearray(sealed)
        altered[index] ^= 0x01
        with pytest.raises(CannotDecrypt, match="altered or sealed under another key"):
            cipher.open(bytes(altered))


def test_a_foreign_message_does_not_open() -> None:
    sealed = Cipher(new_dek()).seal(b"the cluster")
    with pytest.raises(CannotDecrypt, match="altered or sealed under another key"):
        Cipher(new_dek()).open(sealed)
    with pytest.raises(CannotDecrypt, match="not a message sealed with AES-256-GCM"):
        Cipher(new_dek()).open(b'{"ID": "plain json"}')
    with pytest.raises(CannotDecrypt, match="not a message sealed"):
        Cipher(new_dek()).open(b"")


def test_a_message_opens_only_in_its_context() -> None:
    cipher = Cipher(new_dek())
    sealed = cipher.seal(b"web", b"Service/a")
    assert cipher.open(sealed, b"Service/a") == b"web"
    with pytest.raises(CannotDecrypt):
        cipher.open(sealed, b"Service/b")


def test_a_cipher_needs_a_256_bit_key_and_never_shows_it() -> None:
    with pytest.raises(InvalidSpec, match="32 bytes, not 16"):
        Cipher(b"k" * 16)
    key = new_dek()
    assert key.hex() not in repr(Cipher(key))


# Unlock keys


def test_an_unlock_key_is_swarms_human_readable_form() -> None:
    key = new_unlock_key()
    assert key.startswith("SWMKEY-1-")
    encoded = key.removeprefix("SWMKEY-1-")
    assert len(encoded) == 43  # 32 bytes in unpadded standard base64
    assert "=" not in encoded
    assert len(parse_unlock_key(key)) == 32
    assert new_unlock_key() != key


def test_the_apis_example_key_parses() -> None:
    assert len(parse_unlock_key(API_EXAMPLE_KEY)) == 32


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8",
        "SWMKEY-2-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8",
        "swmkey-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8",
        "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8=",
        "SWMKEY-1-not base64!",
        "SWMKEY-1-A",
    ],
)
def test_a_malformed_unlock_key_is_swarms_invalid_key_string(text: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        parse_unlock_key(text)
    assert error.value.message == "invalid key string"


# The key file


def test_a_plain_key_file_gives_its_dek_without_a_key(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    dek = create_key_file(path)
    assert len(dek) == 32
    assert not key_file_sealed(path)
    assert read_dek(path) == dek
    assert read_dek(path, parse_unlock_key(new_unlock_key())) == dek  # a key is not needed


def test_a_sealed_key_file_needs_its_unlock_key(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    unlock_key = parse_unlock_key(new_unlock_key())
    dek = create_key_file(path, unlock_key)
    assert key_file_sealed(path)
    assert base64.b64encode(dek) not in path.read_bytes()
    assert dek not in path.read_bytes()
    with pytest.raises(Locked, match="sealed"):
        read_dek(path)
    assert read_dek(path, unlock_key) == dek


def test_a_wrong_unlock_key_is_swarms_invalid_key(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    create_key_file(path, parse_unlock_key(new_unlock_key()))
    for wrong in (new_unlock_key(), "SWMKEY-1-", "SWMKEY-1-AAAA"):
        with pytest.raises(Unauthorized) as error:
            read_dek(path, parse_unlock_key(wrong))
        assert error.value.message == INVALID_UNLOCK_KEY
    assert INVALID_UNLOCK_KEY == "swarm could not be unlocked: invalid key provided"


def test_rotation_and_autolock_changes_keep_the_dek(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    dek = create_key_file(path)
    first = parse_unlock_key(new_unlock_key())
    assert rekey_key_file(path, None, first) == dek  # autolock on
    second = parse_unlock_key(new_unlock_key())
    assert rekey_key_file(path, first, second) == dek  # rotation
    with pytest.raises(Unauthorized):
        read_dek(path, first)
    assert read_dek(path, second) == dek
    assert rekey_key_file(path, second, None) == dek  # autolock off
    assert not key_file_sealed(path)
    assert read_dek(path) == dek


def test_rekeying_needs_the_current_key(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    current = parse_unlock_key(new_unlock_key())
    create_key_file(path, current)
    before = path.read_bytes()
    with pytest.raises(Unauthorized):
        rekey_key_file(path, parse_unlock_key(new_unlock_key()), None)
    with pytest.raises(Locked):
        rekey_key_file(path, None, None)
    assert path.read_bytes() == before


def test_the_key_file_is_private_and_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "state" / "store.key"
    dek = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_key_file(path, dek, parse_unlock_key(new_unlock_key()))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(path.parent)) == ["store.key"]  # no temporary file left


def test_an_existing_key_file_is_never_replaced_by_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    dek = create_key_file(path)
    with pytest.raises(Conflict, match="already exists"):
        create_key_file(path)
    assert read_dek(path) == dek
    assert sorted(os.listdir(tmp_path)) == ["store.key"]


def test_a_missing_or_foreign_key_file_is_said_so(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    with pytest.raises(NotFound, match="no key file"):
        read_dek(path)
    for content in (b"", b"[]", b'{"version": 1, "sealed": false, "dek": "c2hvcnQ="}'):
        path.write_bytes(content)
        with pytest.raises(CannotDecrypt, match="not a swarmlet key file"):
            read_dek(path)
    path.write_text(json.dumps({"version": 9, "sealed": False, "dek": ""}))
    with pytest.raises(CannotDecrypt, match="unknown key file version 9"):
        read_dek(path)


# A sealed SQLite store


def marked_service(name: str = "web") -> Service:
    return Service(id=f"id-{name}", spec=ServiceSpec(name=name, labels={"note": MARKER}))


async def test_no_object_is_in_plain_text_in_the_file_or_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await Store.open(SqliteBackend(path, Cipher(new_dek())), FakeClock())
    await store.commit([Op.create(marked_service())])
    await store.commit([Op.create(marked_service("api"))])
    wal = path.with_name("store.db-wal")
    assert wal.stat().st_size > 0
    assert MARKER.encode() not in wal.read_bytes()
    assert MARKER.encode() not in path.read_bytes()
    assert b'"Labels"' not in wal.read_bytes()
    store.close()  # the WAL is checkpointed into the file
    assert MARKER.encode() not in path.read_bytes()


async def test_without_a_cipher_the_marker_is_there(tmp_path: Path) -> None:
    """The check above can see a marker: an unsealed store shows it."""
    path = tmp_path / "store.db"
    store = await Store.open(SqliteBackend(path), FakeClock())
    await store.commit([Op.create(marked_service())])
    assert MARKER.encode() in path.with_name("store.db-wal").read_bytes()
    store.close()
    assert MARKER.encode() in path.read_bytes()


async def test_a_sealed_store_reopens_only_with_its_dek(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    dek = new_dek()
    store = await Store.open(SqliteBackend(path, Cipher(dek)), FakeClock())
    (created,) = await store.commit([Op.create(marked_service())])
    store.close()

    again = await Store.open(SqliteBackend(path, Cipher(dek)), FakeClock())
    assert again.get(Service, "id-web") == created
    again.close()
    with pytest.raises(CannotDecrypt, match="Service id-web: cannot decrypt"):
        await Store.open(SqliteBackend(path, Cipher(new_dek())), FakeClock())
    with pytest.raises(CannotDecrypt, match="Service id-web is encrypted"):
        await Store.open(SqliteBackend(path), FakeClock())


async def test_a_plain_row_in_a_sealed_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    plain = await Store.open(SqliteBackend(path), FakeClock())
    await plain.commit([Op.create(marked_service())])
    plain.close()
    with pytest.raises(CannotDecrypt, match="Service id-web is stored unencrypted"):
        await Store.open(SqliteBackend(path, Cipher(new_dek())), FakeClock())


async def test_a_row_moved_to_another_object_does_not_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    dek = new_dek()
    backend = SqliteBackend(path, Cipher(dek))
    store = await Store.open(backend, FakeClock())
    await store.commit([Op.create(marked_service("web")), Op.create(marked_service("api"))])
    db = backend._db
    (sealed,) = db.execute("SELECT data FROM objects WHERE id = 'id-web'").fetchone()
    db.execute("UPDATE objects SET data = ? WHERE id = 'id-api'", (sealed,))
    store.close()
    with pytest.raises(CannotDecrypt, match="Service id-api"):
        await Store.open(SqliteBackend(path, Cipher(dek)), FakeClock())
