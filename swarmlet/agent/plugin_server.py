"""The network plugin's socket: where the host's engine finds swarmlet's network and IPAM
driver (``swarmlet.net.driver``) by name.

The engine looks for ``/run/docker/plugins/<name>.sock`` when a network names the driver
``<name>``; every request is an HTTP POST of JSON to ``/<Protocol>.<Method>``. Who is at the
other end matters: the endpoint's container side must be made in the engine's own network
namespace (in the lab, a shared engine is not in the host's), and the socket says which
process that is (``SO_PEERCRED``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

from swarmlet.net.driver import NetworkPlugin, TeardownHost

log = logging.getLogger(__name__)

PLUGINS_DIR = Path("/run/docker/plugins")
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
_UCRED = struct.Struct("3i")  # pid, uid, gid


def socket_path(name: str, plugins_dir: Path = PLUGINS_DIR) -> Path:
    return plugins_dir / f"{name}.sock"


def peer_pid(request: web.Request) -> int:
    """The process at the other end of the request's unix socket (0 if unknown)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return 0
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return 0
    pid: int = _UCRED.unpack(raw)[0]
    return pid


def plugin_app(plugin: NetworkPlugin) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        path = "/" + request.match_info["method"]
        if not plugin.knows(path):
            # The protocol's way to say "not implemented": the engine goes on without it.
            return web.json_response({"Err": f"{path} is not implemented"}, status=404)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return web.json_response({"Err": "the request is not JSON"}, status=400)
        if not isinstance(body, dict):
            body = {}
        answer = await plugin.handle(path, body, peer_pid(request))
        return web.json_response(answer, content_type=CONTENT_TYPE)

    app = web.Application()
    app.router.add_post("/{method}", handle)
    return app


class PluginServer:
    """Serves the plugin on its socket until stopped; the socket file goes with it."""

    def __init__(self, plugin: NetworkPlugin, name: str, plugins_dir: Path = PLUGINS_DIR):
        self._app = plugin_app(plugin)
        self.path = socket_path(name, plugins_dir)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A socket left by a daemon that was killed: nobody answers on it any more.
        self.path.unlink(missing_ok=True)
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.path)).start()
        log.info("network plugin on %s", self.path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@contextlib.asynccontextmanager
async def teardown_plugins(
    names: Sequence[str], plugins_dir: Path = PLUGINS_DIR
) -> AsyncIterator[None]:
    """Answer on the sockets of ``names`` while what their daemons made is removed (their
    containers, the engine's copies of their networks), so the engine does not wait on them."""
    servers = [PluginServer(NetworkPlugin(TeardownHost()), name, plugins_dir) for name in names]
    try:
        for server in servers:
            await server.start()
        yield
    finally:
        for server in servers:
            await server.stop()
