"""dockercoins' webui: the mining speed, read from redis, as JSON and as a page.

``GET /json`` answers ``{"coins": N, "hashes": N, "now": seconds}``: the coins in the redis
hash ``wallet`` (``HLEN``), the counter ``hashes`` (``GET``) and the time, as float seconds.
``GET /`` (and ``/index.html``) serves a page that polls ``/json`` every second and charts
the hashes per second on a canvas: self-contained, no script from anywhere else.
Upstream's is a Node.js (express) app; this one answers the same.

Python 3 standard library only, with a tiny client of redis' wire protocol (RESP).
Environment: ``PORT`` (80), ``BIND`` (0.0.0.0), ``REDIS_ADDR`` (redis:6379).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "80"))
BIND = os.environ.get("BIND", "0.0.0.0")
REDIS_HOST, _, REDIS_PORT = os.environ.get("REDIS_ADDR", "redis:6379").rpartition(":")
TIMEOUT_S = 5.0


def redis_commands(*commands: tuple[str, ...]) -> list[bytes | int | None]:
    """Send ``commands`` to redis on one new connection; their replies, in order.

    RESP, redis' wire protocol: a command is an array of bulk strings, a reply starts with
    its type (``:`` integer, ``$`` bulk string, ``$-1`` none, ``-`` error). HLEN and GET
    answer only integers, bulk strings and errors, so that is all this reads.
    """
    request = b""
    for command in commands:
        request += b"*%d\r\n" % len(command)
        for arg in command:
            request += b"$%d\r\n%s\r\n" % (len(arg.encode()), arg.encode())
    with socket.create_connection((REDIS_HOST, int(REDIS_PORT)), timeout=TIMEOUT_S) as sock:
        sock.sendall(request)
        reader = sock.makefile("rb")
        replies: list[bytes | int | None] = []
        for _ in commands:
            line = reader.readline()
            kind, rest = line[:1], line[1:-2]
            if kind == b":":
                replies.append(int(rest))
            elif kind == b"$":
                size = int(rest)
                replies.append(None if size < 0 else reader.read(size + 2)[:-2])
            elif kind == b"-":
                raise RuntimeError(f"redis: {rest.decode()}")
            else:
                raise RuntimeError(f"redis: an unexpected reply {line!r}")
        return replies


def stats() -> dict[str, float | int]:
    coins, hashes = redis_commands(("HLEN", "wallet"), ("GET", "hashes"))
    return {"coins": int(coins or 0), "hashes": int(hashes or 0), "now": time.time()}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/json":
            try:
                body, status = json.dumps(stats()), 200
            except (OSError, RuntimeError, ValueError) as exc:  # redis not there (yet)
                body, status = json.dumps({"error": f"redis: {exc}"}), 503
            self.answer(status, body.encode(), "application/json")
        elif path in ("/", "/index.html"):
            self.answer(200, PAGE.encode(), "text/html; charset=utf-8")
        else:
            self.answer(404, b"Not Found\n", "text/plain")

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


# The page: every second, /json; the rate is the change of `hashes` over the change of `now`
# between two answers, and the last two minutes of rates are drawn as a line.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>DockerCoin Miner WebUI</title>
<style>
  body { font-family: sans-serif; margin: 2em; color: #222; }
  #speed { font-size: 1.4em; }
  canvas { border: 1px solid #ccc; margin-top: 1em; }
  .muted { color: #777; }
</style>
</head>
<body>
<h1>DockerCoin Miner WebUI</h1>
<p id="speed">Current mining speed: <b id="rate">-</b> hashes/second</p>
<p class="muted">Coins: <span id="coins">-</span>, hashes: <span id="hashes">-</span>
  <span id="error"></span></p>
<canvas id="chart" width="800" height="300"></canvas>
<script>
"use strict";
const WINDOW_S = 120;
const points = [];  // {t: seconds, rate: hashes per second}
let previous = null;

function draw() {
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 40;
  ctx.clearRect(0, 0, w, h);
  const top = Math.max(10, ...points.map(p => p.rate)) * 1.1;
  const now = points.length ? points[points.length - 1].t : 0;
  const x = t => pad + (w - 2 * pad) * (1 - (now - t) / WINDOW_S);
  const y = r => h - pad - (h - 2 * pad) * r / top;
  ctx.strokeStyle = "#ddd"; ctx.fillStyle = "#777"; ctx.font = "12px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const r = top * i / 4;
    ctx.beginPath(); ctx.moveTo(pad, y(r)); ctx.lineTo(w - pad, y(r)); ctx.stroke();
    ctx.fillText(r.toFixed(1), 4, y(r) + 4);
  }
  ctx.fillText("hashes/s over the last " + WINDOW_S + " s", pad, h - 12);
  ctx.strokeStyle = "#1565c0"; ctx.lineWidth = 2; ctx.beginPath();
  points.forEach((p, i) => i ? ctx.lineTo(x(p.t), y(p.rate)) : ctx.moveTo(x(p.t), y(p.rate)));
  ctx.stroke();
}

async function refresh() {
  try {
    const answer = await fetch("json", {cache: "no-store"});
    const data = await answer.json();
    if (!answer.ok) throw new Error(data.error || answer.statusText);
    document.getElementById("error").textContent = "";
    document.getElementById("coins").textContent = data.coins;
    document.getElementById("hashes").textContent = data.hashes;
    // A rate over less than half a second is mostly noise (two answers close together).
    if (!previous || data.now - previous.now >= 0.5) {
      if (previous) {
        const rate = Math.max(0, (data.hashes - previous.hashes) / (data.now - previous.now));
        points.push({t: data.now, rate: rate});
        while (points.length && points[0].t < data.now - WINDOW_S) points.shift();
        document.getElementById("rate").textContent = rate.toFixed(1);
      }
      previous = data;
    }
  } catch (e) {
    document.getElementById("error").textContent = "(" + e.message + ")";
  }
  draw();
}

refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""


def main() -> None:
    # As PID 1 in a container, a process gets no default SIGTERM: exit at once on `docker stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((BIND, PORT), Handler)
    print(f"webui listening on {BIND}:{PORT}", file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
