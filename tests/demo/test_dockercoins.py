"""dockercoins (demo/dockercoins): the four apps as processes on loopback against a real
redis-server, then the built images together on the machine's engine."""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo" / "dockercoins"
BUILD = ROOT / "scripts" / "images" / "dockercoins.sh"
APPS = ("rng", "hasher", "worker", "webui")
LOOPBACK = "127.0.0.1"


def _load_worker() -> ModuleType:
    """The worker's file as a module, for its redis client (RESP over a socket)."""
    spec = importlib.util.spec_from_file_location("dockercoins_worker", DEMO / "worker/worker.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker_app = _load_worker()


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (scripts/bootstrap.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def eventually(predicate: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    """Wait until ``predicate`` holds: the apps work in real time (bounded, not a measure)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds:g} s: {what}")
        time.sleep(0.1)


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
    """Status, content type and body of one HTTP request to ``127.0.0.1:port``."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


class Processes:
    """Processes started by one test, each logging to a file, all ended after it."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
            )
        self.started.append(process)
        return process

    def run(self, app: str, **env: str) -> subprocess.Popen[bytes]:
        """Start one of the apps, as its image does: the file alone, by the interpreter."""
        return self.start(app, [sys.executable, str(DEMO / app / f"{app}.py")], env)

    def app(self, app: str, port: int | None = None, **env: str) -> int:
        """Start ``app`` on a free loopback port; the port, once it accepts connections."""
        port = port or free_port()
        process = self.run(app, PORT=str(port), BIND=LOOPBACK, **env)
        self.wait_for_port(app, process, port)
        return port

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def wait_for_port(self, name: str, process: subprocess.Popen[bytes], port: int) -> None:
        def listening() -> bool:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}: {self.log(name)}")
            try:
                socket.create_connection((LOOPBACK, port), timeout=1).close()
            except OSError:
                return False
            return True

        eventually(listening, f"{name} listening on {port}", seconds=20)

    def redis(self, port: int | None = None) -> int:
        """A real redis-server on a free loopback port, with nothing saved to disk."""
        port = port or free_port()
        argv = ["--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
        process = self.start("redis", [need("redis-server"), *argv], {})
        self.wait_for_port("redis", process, port)
        return port

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def redis_port(processes: Processes) -> int:
    return processes.redis()


@pytest.fixture
def redis(redis_port: int) -> Iterator[Any]:
    client = worker_app.Redis((LOOPBACK, redis_port))
    try:
        yield client
    finally:
        client.close()


def test_rng_answers_n_random_bytes_after_a_tenth_of_a_second(processes):
    port = processes.app("rng")
    start = time.monotonic()
    status, content_type, body = request(port, "GET", "/32")
    assert time.monotonic() - start >= 0.1
    assert (status, content_type, len(body)) == (200, "application/octet-stream", 32)
    assert [len(request(port, "GET", f"/{n}")[2]) for n in (0, 1, 1000)] == [0, 1, 1000]
    assert request(port, "GET", "/32")[2] != body
    status, _, text = request(port, "GET", "/")
    assert status == 200
    assert text.startswith(b"RNG running on ")
    assert request(port, "GET", "/many")[0] == 404


def test_rng_serves_one_request_at_a_time(processes):
    port = processes.app("rng")
    bodies: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: bodies.append(request(port, "GET", "/8")[2]))
        for _ in range(3)
    ]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Three requests at once, each sleeping 0.1 s: served one after the other, never together.
    assert time.monotonic() - start >= 0.3
    assert [len(body) for body in bodies] == [8, 8, 8]


def test_hasher_answers_the_sha256_of_the_body_in_hex(processes):
    port = processes.app("hasher")
    for body in (b"", b"abc", os.urandom(32), os.urandom(100_000)):
        start = time.monotonic()
        status, content_type, digest = request(port, "POST", "/", body)
        assert time.monotonic() - start >= 0.1
        assert (status, content_type) == (200, "text/plain")
        assert digest.decode() == hashlib.sha256(body).hexdigest()
    status, _, text = request(port, "GET", "/")
    assert status == 200
    assert text.startswith(b"HASHER running on ")


def wallet(redis) -> dict[bytes, bytes]:
    flat = redis.command("HGETALL", "wallet")
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_the_worker_counts_hashes_and_keeps_coins(processes, redis_port, redis):
    rng = processes.app("rng")
    hasher = processes.app("hasher")
    processes.run(
        "worker",
        RNG_ADDR=f"{LOOPBACK}:{rng}",
        HASHER_ADDR=f"{LOOPBACK}:{hasher}",
        REDIS_ADDR=f"{LOOPBACK}:{redis_port}",
    )
    eventually(lambda: int(redis.command("GET", "hashes") or 0) >= 8, "8 hashes counted")
    # A coin is a hash starting with 0: one in 16 hashes, so this takes about 4 s.
    eventually(lambda: redis.command("HLEN", "wallet") >= 1, "a coin in the wallet")
    for coin, random_bytes in wallet(redis).items():
        assert len(random_bytes) == 32
        assert coin.decode() == hashlib.sha256(random_bytes).hexdigest()
        assert coin.startswith(b"0")
    assert "units of work done, updating hash counter" in processes.log("worker")


def test_the_worker_waits_and_retries_until_redis_rng_and_hasher_answer(processes):
    need("redis-server")
    rng, hasher, redis_port = free_port(), free_port(), free_port()
    worker = processes.run(
        "worker",
        RNG_ADDR=f"{LOOPBACK}:{rng}",
        HASHER_ADDR=f"{LOOPBACK}:{hasher}",
        REDIS_ADDR=f"{LOOPBACK}:{redis_port}",
        RETRY_S="0.2",
    )

    def retries() -> int:
        return processes.log("worker").count("Waiting 0.2s and restarting.")

    eventually(lambda: retries() >= 2, "the worker retrying while nothing answers")
    processes.redis(redis_port)  # redis answers now, rng still not
    seen = retries()
    eventually(lambda: retries() >= seen + 2, "the worker retrying while rng does not answer")
    assert worker.poll() is None
    processes.app("rng", rng)
    processes.app("hasher", hasher)
    client = worker_app.Redis((LOOPBACK, redis_port))
    try:
        eventually(lambda: int(client.command("GET", "hashes") or 0) >= 4, "4 hashes counted")
    finally:
        client.close()
    assert worker.poll() is None
    assert "ConnectionRefusedError" in processes.log("worker")


def json_stats(port: int) -> dict[str, Any]:
    status, content_type, body = request(port, "GET", "/json")
    assert (status, content_type) == (200, "application/json")
    stats: dict[str, Any] = json.loads(body)
    return stats


def test_webui_answers_coins_hashes_and_now_from_redis(processes, redis_port, redis):
    port = processes.app("webui", REDIS_ADDR=f"{LOOPBACK}:{redis_port}")
    empty = json_stats(port)
    assert set(empty) == {"coins", "hashes", "now"}
    assert (empty["coins"], empty["hashes"]) == (0, 0)
    assert isinstance(empty["now"], float)
    assert abs(empty["now"] - time.time()) < 60
    redis.command("INCRBY", "hashes", 41)
    redis.command("HSET", "wallet", "0abc", os.urandom(32))
    redis.command("HSET", "wallet", "0def", os.urandom(32))
    stats = json_stats(port)
    assert (stats["coins"], stats["hashes"]) == (2, 41)
    assert stats["now"] >= empty["now"]


def test_webui_counts_grow_while_a_worker_mines(processes, redis_port):
    redis_addr = f"{LOOPBACK}:{redis_port}"
    rng = processes.app("rng")
    hasher = processes.app("hasher")
    webui = processes.app("webui", REDIS_ADDR=redis_addr)
    first = json_stats(webui)
    processes.run(
        "worker",
        RNG_ADDR=f"{LOOPBACK}:{rng}",
        HASHER_ADDR=f"{LOOPBACK}:{hasher}",
        REDIS_ADDR=redis_addr,
    )
    eventually(lambda: json_stats(webui)["hashes"] > first["hashes"], "hashes growing")
    eventually(lambda: json_stats(webui)["coins"] > first["coins"], "coins growing")


def test_webui_without_redis_answers_503_with_the_error(processes):
    port = processes.app("webui", REDIS_ADDR=f"{LOOPBACK}:{free_port()}")
    status, content_type, body = request(port, "GET", "/json")
    assert (status, content_type) == (503, "application/json")
    assert json.loads(body)["error"].startswith("redis: ")


def test_webui_serves_a_self_contained_page_that_charts_json(processes, redis_port):
    port = processes.app("webui", REDIS_ADDR=f"{LOOPBACK}:{redis_port}")
    status, content_type, page = request(port, "GET", "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert request(port, "GET", "/index.html")[2] == page
    assert b"<canvas" in page
    assert b'fetch("json"' in page
    assert b"setInterval(refresh, 1000)" in page
    # Nothing from elsewhere: the machines that run the demo reach no network.
    assert b"src=" not in page
    assert b"http://" not in page
    assert b"https://" not in page
    assert request(port, "GET", "/nothing")[0] == 404
