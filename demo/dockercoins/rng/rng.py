"""dockercoins' rng: random bytes over HTTP, one request at a time.

``GET /N`` answers N random bytes after sleeping 0.1 s; ``GET /`` says which host answers.
The server is single-threaded on purpose, as upstream's (Flask with ``threaded=False``): one
rng serves at most ten requests a second, which is why ten workers peak near 10 hashes/s and
running rng as a global service lifts it.

Python 3 standard library only. Environment: ``PORT`` (80), ``BIND`` (0.0.0.0).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(os.environ.get("PORT", "80"))
BIND = os.environ.get("BIND", "0.0.0.0")
DELAY_S = 0.1  # the work this service pretends to do, per request
MAX_BYTES = 1 << 20  # a guard upstream does not have: no one asks for more than 32


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].strip("/")
        if not path:
            self.answer(200, f"RNG running on {socket.gethostname()}\n".encode(), "text/plain")
            return
        if not path.isdigit() or int(path) > MAX_BYTES:
            self.answer(404, b"Not Found\n", "text/plain")
            return
        time.sleep(DELAY_S)
        self.answer(200, os.urandom(int(path)), "application/octet-stream")

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    # As PID 1 in a container, a process gets no default SIGTERM: exit at once on `docker stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # HTTPServer, not ThreadingHTTPServer: one request at a time, like upstream.
    server = HTTPServer((BIND, PORT), Handler)
    print(f"rng listening on {BIND}:{PORT}", file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
