"""Where swarmletd serves the Engine API: its ``--host`` values, read and then served.

A unix socket is root's alone (0600). A TCP socket is served with TLS and client certificates
(``--tlsverify``), or in plain text only when the operator said so (``--insecure-tcp``); which
of the two is decided before anything starts (``swarmlet.daemon.options.api_tls``).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import web

log = logging.getLogger("swarmletd")

# dockerd's default ports: 2376 with TLS, 2375 without.
TLS_PORT = 2376
PLAIN_PORT = 2375


@dataclass(frozen=True)
class UnixHost:
    url: str  # as written
    path: Path


@dataclass(frozen=True)
class TcpHost:
    url: str  # as written
    host: str | None  # None: every address, as tcp://:2375 means to dockerd
    port: int | None  # None: dockerd's default for the scheme


Host = UnixHost | TcpHost


def parse_host(value: str) -> Host:
    """A ``--host`` value; ValueError when it is neither ``unix:///path`` nor ``tcp://ip:port``."""
    url = urlparse(value)
    if url.scheme == "unix":
        if not url.path:
            raise ValueError(f"unix:// needs a socket path, got {value!r}")
        return UnixHost(value, Path(url.path))
    if url.scheme == "tcp":
        try:
            port = url.port
        except ValueError:
            raise ValueError(f"invalid port in {value!r}") from None
        if url.path not in ("", "/"):
            raise ValueError(f"tcp:// takes no path, got {value!r}")
        return TcpHost(value, url.hostname or None, port)
    raise ValueError(f"unsupported host {value!r}: use unix:///path or tcp://ip:port")


async def serve(
    app: web.Application, hosts: list[Host], tls: ssl.SSLContext | None
) -> web.AppRunner:
    """Serve ``app`` on ``hosts``; TCP with ``tls`` when given, in plain text otherwise."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    for host in hosts:
        if isinstance(host, UnixHost):
            host.path.parent.mkdir(parents=True, exist_ok=True)
            host.path.unlink(missing_ok=True)
            await web.UnixSite(runner, str(host.path)).start()
            # The API decides what runs as root on every host: root's alone.
            host.path.chmod(0o600)
            log.info("API listening on unix://%s", host.path)
        else:
            port = host.port or (TLS_PORT if tls is not None else PLAIN_PORT)
            await web.TCPSite(runner, host.host, port, ssl_context=tls).start()
            if tls is None:
                log.warning(
                    "API listening on tcp://%s:%d in plain text (--insecure-tcp): anyone who"
                    " reaches it is root on this host",
                    host.host or "*",
                    port,
                )
            else:
                log.info(
                    "API listening on tcp://%s:%d (TLS, client certificates required)",
                    host.host or "*",
                    port,
                )
    return runner
