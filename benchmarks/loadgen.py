"""A bounded HTTP load generator: N concurrent clients, one fresh TCP connection per request.

    python benchmarks/loadgen.py HOST PORT [--concurrency 8] [--requests 3000] [--duration 10]
    python benchmarks/loadgen.py HOST PORT --probe

Each request is connect, ``GET / HTTP/1.0``, read to EOF (the server closes), close: a request
counts as done when its whole response is in and its status is 200. The run stops at
``--requests`` requests or after ``--duration`` seconds, whichever comes first (no request starts
after the deadline; one in flight ends within ``--timeout`` s). Prints one JSON object: counts,
elapsed time, requests/s, latency percentiles (ms) and the generator's own CPU use (% of one
core). ``--probe`` makes one request and exits 0 if it was answered with 200.

Standard library only, so that it runs under ``nsenter`` in a lab host's namespace with any
Python 3.11.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import socket
import sys
import time
from dataclasses import dataclass, field

REQUEST = b"GET / HTTP/1.0\r\nHost: bench\r\nUser-Agent: swarmlet-bench\r\n\r\n"


@dataclass
class Tally:
    remaining: int
    deadline: float
    timeout: float
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def request(host: str, port: int, limit_s: float) -> float:
    """One request on a fresh connection; its latency in seconds. Raises on any failure."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(limit_s):
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, REQUEST)
            chunks = []
            while chunk := await loop.sock_recv(sock, 65536):
                chunks.append(chunk)
    finally:
        sock.close()
    elapsed = time.perf_counter() - started
    response = b"".join(chunks)
    if not response.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
        raise ValueError(f"bad response: {response[:40]!r}")
    return elapsed


async def client(host: str, port: int, tally: Tally) -> None:
    while tally.remaining > 0 and time.perf_counter() < tally.deadline:
        tally.remaining -= 1
        try:
            tally.latencies.append(await request(host, port, tally.timeout))
        except TimeoutError:
            tally.error("timeout")
        except OSError as exc:
            tally.error(type(exc).__name__)
        except ValueError:
            tally.error("bad response")


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


async def run(
    host: str, port: int, concurrency: int, requests: int, duration: float, limit_s: float
) -> dict[str, object]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_started = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    tally = Tally(remaining=requests, deadline=started + duration, timeout=limit_s)
    await asyncio.gather(*(client(host, port, tally) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_started
    ordered = sorted(tally.latencies)
    ms = 1000.0
    return {
        "target": f"{host}:{port}",
        "concurrency": concurrency,
        "ok": len(ordered),
        "errors": tally.errors,
        "elapsed_s": round(elapsed, 3),
        "rps": round(len(ordered) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(ordered, 0.50) * ms, 3),
        "p90_ms": round(percentile(ordered, 0.90) * ms, 3),
        "p99_ms": round(percentile(ordered, 0.99) * ms, 3),
        "max_ms": round(ordered[-1] * ms, 3) if ordered else math.nan,
        # The generator's own CPU time over the run's wall time: near 100, one core is busy
        # with it, and it, not the path measured, may be what limits the requests/s.
        "client_cpu_pct": round(100 * cpu / elapsed, 1) if elapsed > 0 else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000, help="at most this many")
    parser.add_argument("--duration", type=float, default=10.0, help="at most this long (s)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request (s)")
    parser.add_argument("--probe", action="store_true", help="one request; exit 0 if 200")
    args = parser.parse_args()
    if not (1 <= args.concurrency <= 256 and 1 <= args.requests <= 100_000):
        parser.error("concurrency must be 1..256 and requests 1..100000")
    if not 0 < args.duration <= 60:
        parser.error("duration must be in (0, 60] s")
    if args.probe:
        try:
            asyncio.run(request(args.host, args.port, min(args.timeout, 3.0)))
        except (OSError, TimeoutError, ValueError) as exc:
            print(f"probe {args.host}:{args.port}: {exc!r}", file=sys.stderr)
            return 1
        return 0
    result = asyncio.run(
        run(args.host, args.port, args.concurrency, args.requests, args.duration, args.timeout)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
