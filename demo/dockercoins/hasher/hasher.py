"""dockercoins' hasher: the SHA-256 of a request's body, over HTTP.

``POST /`` answers the body's SHA-256 in hex after sleeping 0.1 s; ``GET /`` says which host
answers. Upstream's is a Ruby (Sinatra) app; this one answers the same. Requests are served
in threads, as Sinatra's server does, so the hasher is not the bottleneck: rng is.

Python 3 standard library only. Environment: ``PORT`` (80), ``BIND`` (0.0.0.0).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "80"))
BIND = os.environ.get("BIND", "0.0.0.0")
DELAY_S = 0.1  # the work this service pretends to do, per request
MAX_BODY = 1 << 20  # a guard upstream does not have: workers send 32 bytes


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length_header = self.headers.get("Content-Length") or "0"
        if not length_header.isdigit() or int(length_header) > MAX_BODY:
            self.answer(400, b"a body of at most 1 MiB, with its Content-Length, is needed\n")
            return
        body = self.rfile.read(int(length_header))
        time.sleep(DELAY_S)
        self.answer(200, hashlib.sha256(body).hexdigest().encode())

    def do_GET(self) -> None:
        self.answer(200, f"HASHER running on {socket.gethostname()}\n".encode())

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    # As PID 1 in a container, a process gets no default SIGTERM: exit at once on `docker stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((BIND, PORT), Handler)
    print(f"hasher listening on {BIND}:{PORT}", file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
