"""Encryption at rest: the store's data key (DEK), its key file, and Swarm's unlock keys.

Every object row of the SQLite store is sealed with the DEK (AES-256-GCM). The DEK lives in
``store.key`` beside ``store.db``: plainly when autolock is off, or sealed under a
key-encryption key (KEK) derived from the operator's unlock key (``SWMKEY-1-…``) when it is
on, so a restarted manager cannot read its store until ``docker swarm unlock``. Changing the
unlock key (autolock on or off, rotation) re-writes only the key file: the DEK, and so every
row, stays as it is. (SwarmKit: ``manager/encryption`` and ``manager/deks.go``.)
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from swarmlet.errors import CannotDecrypt, Conflict, InvalidSpec, Locked, NotFound, Unauthorized

KEY_SIZE = 32
NONCE_SIZE = 12
UNLOCK_KEY_PREFIX = "SWMKEY-1-"

# SwarmKit's and moby's words (manager/encryption ParseHumanReadableKey; daemon/cluster
# errors.go invalidUnlockKey).
INVALID_KEY_STRING = "invalid key string"
INVALID_UNLOCK_KEY = "swarm could not be unlocked: invalid key provided"

# The first byte of every sealed message: the algorithm, so another one can follow.
_AES_256_GCM = b"\x01"
_TAG_SIZE = 16
_KEY_FILE_VERSION = 1
# What a sealed DEK is bound to, so no other sealed message passes for one.
_DEK_CONTEXT = b"swarmlet store.key dek"
_KEK_INFO = b"swarmlet store.key kek v1"


class Cipher:
    """AES-256-GCM under one key, with a fresh random 96-bit nonce for every message.

    A sealed message is ``0x01 | nonce | ciphertext and tag``. ``context`` (GCM's associated
    data) binds a message to where it belongs: opened with another context, it fails like a
    tampered one. Random nonces are safe for far more messages than a store writes under one
    key (NIST SP 800-38D: 2**32).
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise InvalidSpec(f"an encryption key has {KEY_SIZE} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Cipher(AES-256-GCM)"  # never the key

    def seal(self, plain: bytes, context: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(NONCE_SIZE)
        return _AES_256_GCM + nonce + self._aead.encrypt(nonce, plain, _AES_256_GCM + context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        """The plain bytes, or CannotDecrypt when ``sealed`` was altered, was sealed under
        another key or context, or is not a sealed message at all."""
        header, nonce, body = sealed[:1], sealed[1 : 1 + NONCE_SIZE], sealed[1 + NONCE_SIZE :]
        if header != _AES_256_GCM or len(body) < _TAG_SIZE:
            raise CannotDecrypt("cannot decrypt: not a message sealed with AES-256-GCM")
        try:
            return self._aead.decrypt(nonce, body, header + context)
        except InvalidTag:
            raise CannotDecrypt(
                "cannot decrypt: the data was altered or sealed under another key"
            ) from None


def new_dek() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


# An object as a backend stores it (SQLite's rows, etcd's values)


def seal_object(cipher: Cipher | None, kind: str, object_id: str, data: str) -> str | bytes:
    """The object's JSON sealed under ``cipher``, bound to its kind and ID (so a value moved
    to another object does not open); as it is without a cipher."""
    if cipher is None:
        return data
    return cipher.seal(data.encode(), object_context(kind, object_id))


def open_object(cipher: Cipher | None, kind: str, object_id: str, data: str | bytes) -> str:
    """The object's JSON from what ``seal_object`` made (sealed: bytes, plain: text);
    CannotDecrypt names the object when it does not open, or is not sealed as the store is."""
    if cipher is None:
        if isinstance(data, bytes):
            raise CannotDecrypt(f"{kind} {object_id} is encrypted: the store needs its key")
        return data
    return open_sealed(cipher, kind, object_id, data).decode()


def open_sealed(cipher: Cipher, kind: str, object_id: str, data: str | bytes) -> bytes:
    """What was sealed for the object (``Cipher.seal`` with its context), as bytes."""
    if isinstance(data, str):
        raise CannotDecrypt(f"{kind} {object_id} is stored unencrypted in an encrypted store")
    try:
        return cipher.open(data, object_context(kind, object_id))
    except CannotDecrypt as exc:
        raise CannotDecrypt(f"{kind} {object_id}: {exc.message}") from None


def object_context(kind: str, object_id: str) -> bytes:
    return f"{kind}/{object_id}".encode()


# Unlock keys


def new_unlock_key() -> str:
    """A new unlock key, as Swarm prints it: ``SWMKEY-1-`` and 32 random bytes in unpadded
    standard base64 (SwarmKit's HumanReadableKey uses base64.RawStdEncoding)."""
    return human_readable_key(secrets.token_bytes(KEY_SIZE))


def human_readable_key(key: bytes) -> str:
    return UNLOCK_KEY_PREFIX + base64.b64encode(key).decode().rstrip("=")


def parse_unlock_key(text: str) -> bytes:
    """The key's bytes, or InvalidSpec("invalid key string") as SwarmKit's
    ParseHumanReadableKey: the prefix, then unpadded standard base64. Like Swarm, any length
    parses; a key of the wrong length is simply a key that does not unlock."""
    if not text.startswith(UNLOCK_KEY_PREFIX):
        raise InvalidSpec(INVALID_KEY_STRING)
    # Go's decoder skips line breaks; padding is not part of the raw encoding.
    encoded = text.removeprefix(UNLOCK_KEY_PREFIX).replace("\r", "").replace("\n", "")
    if "=" in encoded:
        raise InvalidSpec(INVALID_KEY_STRING)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSpec(INVALID_KEY_STRING) from None


def _kek(unlock_key: bytes) -> Cipher:
    # The unlock key is already 32 uniformly random bytes and could be the AES key itself.
    # HKDF costs nothing and buys two things: the operator's secret is never used directly as
    # a key (a later use of it for anything else gets its own `info`), and a key of any
    # length, which Swarm's format allows, still gives a 32-byte AES key (so a short one is
    # "invalid key provided", not a crash). No salt: HKDF's extract step is for inputs that
    # are not uniformly random, and a salt would have to be stored beside the sealed DEK.
    kdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=_KEK_INFO)
    return Cipher(kdf.derive(unlock_key))


# The key file: {"version": 1, "sealed": false|true, "dek": base64 of the DEK or sealed DEK}


def create_key_file(path: Path, unlock_key: bytes | None = None) -> bytes:
    """Make a new DEK and write it to a new key file (sealed when given an unlock key);
    returns the DEK. An existing key file is never replaced: that would lose the store."""
    dek = new_dek()
    _write(path, _key_file_json(dek, unlock_key), replace=False)
    return dek


def read_dek(path: Path, unlock_key: bytes | None = None) -> bytes:
    """The DEK in the key file.

    Raises NotFound when there is no key file, Locked when it is sealed and no unlock key is
    given, Unauthorized (Swarm's "invalid key provided") when the key does not open it, and
    CannotDecrypt when the file is not a key file. A key given for a plain file is ignored.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no key file at {path}") from None
    sealed, dek = _parse_key_file(path, raw)
    if not sealed:
        return dek
    if unlock_key is None:
        raise Locked(f"{path} is sealed: the store stays locked until its unlock key is given")
    try:
        return _kek(unlock_key).open(dek, _DEK_CONTEXT)
    except CannotDecrypt:
        raise Unauthorized(INVALID_UNLOCK_KEY) from None


def key_file_sealed(path: Path) -> bool:
    """Whether the key file needs an unlock key (a manager with autolock starts locked)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no key file at {path}") from None
    return _parse_key_file(path, raw)[0]


def write_key_file(path: Path, dek: bytes, unlock_key: bytes | None = None) -> None:
    """Replace the key file atomically: the DEK, sealed under ``unlock_key`` or plain."""
    _write(path, _key_file_json(dek, unlock_key), replace=True)


def rekey_key_file(path: Path, current: bytes | None, new: bytes | None) -> bytes:
    """Re-write the key file under the ``new`` unlock key (None: autolock off), opening it
    with the ``current`` one; returns the DEK, which does not change."""
    dek = read_dek(path, current)
    write_key_file(path, dek, new)
    return dek


def _key_file_json(dek: bytes, unlock_key: bytes | None) -> bytes:
    if len(dek) != KEY_SIZE:
        raise InvalidSpec(f"a DEK has {KEY_SIZE} bytes, not {len(dek)}")
    stored = dek if unlock_key is None else _kek(unlock_key).seal(dek, _DEK_CONTEXT)
    data = {
        "version": _KEY_FILE_VERSION,
        "sealed": unlock_key is not None,
        "dek": base64.b64encode(stored).decode(),
    }
    return json.dumps(data).encode() + b"\n"


def _parse_key_file(path: Path, raw: bytes) -> tuple[bool, bytes]:
    try:
        data: Any = json.loads(raw)
        if data["version"] != _KEY_FILE_VERSION:
            raise CannotDecrypt(f"{path}: unknown key file version {data['version']!r}")
        sealed, dek = data["sealed"], base64.b64decode(data["dek"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise CannotDecrypt(f"{path} is not a swarmlet key file: {exc}") from None
    if not isinstance(sealed, bool) or (not sealed and len(dek) != KEY_SIZE):
        raise CannotDecrypt(f"{path} is not a swarmlet key file")
    return sealed, dek


def _write(path: Path, content: bytes, replace: bool) -> None:
    """Write a temporary file (mode 0600), fsync it, move it into place, fsync the folder:
    the key file is always either the old one or the new one, whole, across a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # fails, unlike a rename, when the path exists
            except FileExistsError:
                raise Conflict(f"{path} already exists: it holds the store's key") from None
            os.unlink(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
