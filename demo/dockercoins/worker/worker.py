"""dockercoins' worker: mines coins with rng and hasher, keeps them in redis.

Forever: sleep 0.1 s, get 32 random bytes from ``http://rng/32``, POST them to
``http://hasher/`` for their SHA-256; a hash that starts with ``0`` is a coin, kept in the
redis hash ``wallet`` (``HSET wallet <hash> <bytes>``). Once a second the loops of that second
are added to the redis counter ``hashes`` (``INCRBY``), which webui turns into hashes/s.
On any error (rng, hasher or redis not there yet, a name that does not resolve) it logs,
waits and starts again; it never exits. The loop and the log lines are upstream's.

Python 3 standard library only: ``http.client`` for HTTP, and a tiny client of redis' wire
protocol (RESP) over a socket. Environment: ``RNG_ADDR`` (rng:80), ``HASHER_ADDR``
(hasher:80), ``REDIS_ADDR`` (redis:6379), ``RETRY_S`` (10, upstream's wait after an error),
``DEBUG`` (``y...`` logs every unit of work).
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import sys
import time
from typing import BinaryIO

TIMEOUT_S = 5.0  # for one HTTP request or redis command
WORK_S = 0.1  # the pause before each unit of work
REPORT_S = 1.0  # how often the loops done are added to `hashes`

log = logging.getLogger(__name__)


def address(variable: str, default: str) -> tuple[str, int]:
    """``host:port`` from the environment (``rng:80``)."""
    host, _, port = os.environ.get(variable, default).rpartition(":")
    return host, int(port)


# --- a tiny redis client: RESP, redis' wire protocol -----------------------------------------
# A command is an array of bulk strings: *2\r\n$3\r\nGET\r\n$6\r\nhashes\r\n. A reply starts
# with its type: + status, - error, : integer, $ bulk string ($-1: none), * array.


class RedisError(Exception):
    """An error reply from redis (``-ERR ...``): the connection is still good."""


class Redis:
    """One connection to redis, opened on first use and again after it fails."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr
        self.sock: socket.socket | None = None
        self.reader: BinaryIO | None = None

    def command(self, *args: str | bytes | int) -> object:
        if self.sock is None or self.reader is None:
            self.sock = socket.create_connection(self.addr, timeout=TIMEOUT_S)
            self.reader = self.sock.makefile("rb")
        try:
            self.sock.sendall(encode(args))
            return read_reply(self.reader)
        except (OSError, ValueError):  # the connection is lost or out of step: start anew
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None


def encode(args: tuple[str | bytes | int, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_reply(reader: BinaryIO) -> object:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else reader.read(size + 2)[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [read_reply(reader) for _ in range(count)]
    raise ValueError(f"not a RESP reply: {line!r}")


# --- the work --------------------------------------------------------------------------------


def http_request(addr: tuple[str, int], method: str, path: str, body: bytes | None) -> bytes:
    """The body of a 200 answer; anything else is an error."""
    conn = http.client.HTTPConnection(*addr, timeout=TIMEOUT_S)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"{method} http://{addr[0]}{path}: {response.status} {data[:80]!r}")
    return data


class Worker:
    def __init__(self) -> None:
        self.rng = address("RNG_ADDR", "rng:80")
        self.hasher = address("HASHER_ADDR", "hasher:80")
        self.redis = Redis(address("REDIS_ADDR", "redis:6379"))

    def get_random_bytes(self) -> bytes:
        return http_request(self.rng, "GET", "/32", None)

    def hash_bytes(self, data: bytes) -> str:
        return http_request(self.hasher, "POST", "/", data).decode()

    def work_loop(self, interval: float = REPORT_S) -> None:
        deadline = 0.0
        loops_done = 0
        while True:
            if time.time() > deadline:
                log.info("%d units of work done, updating hash counter", loops_done)
                self.redis.command("INCRBY", "hashes", loops_done)
                loops_done = 0
                deadline = time.time() + interval
            self.work_once()
            loops_done += 1

    def work_once(self) -> None:
        log.debug("Doing one unit of work")
        time.sleep(WORK_S)
        random_bytes = self.get_random_bytes()
        hex_hash = self.hash_bytes(random_bytes)
        if not hex_hash.startswith("0"):
            log.debug("No coin found")
            return
        log.info("Coin found: %s...", hex_hash[:8])
        created = self.redis.command("HSET", "wallet", hex_hash, random_bytes)
        if not created:
            log.info("We already had that coin")


def main() -> None:
    debug = os.environ.get("DEBUG", "").lower().startswith("y")
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO)
    retry_s = float(os.environ.get("RETRY_S", "10"))
    # As PID 1 in a container, a process gets no default SIGTERM: exit at once on `docker stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    worker = Worker()
    while True:
        try:
            worker.work_loop()
        except Exception:  # anything but SystemExit and KeyboardInterrupt: log, wait, retry
            log.exception("In work loop:")
            log.error("Waiting %gs and restarting.", retry_s)
            time.sleep(retry_s)


if __name__ == "__main__":
    main()
