"""``swarmletd``: the daemon that runs on every host.

It serves the Engine API on its sockets, and runs the manager and/or the agent that the node's
role in the swarm needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path
from urllib.parse import urlparse

import click
from aiohttp import web

from swarmlet.agent.engine import EngineClient
from swarmlet.clock import SystemClock
from swarmlet.daemon.control import NodeControl
from swarmlet.manager.api.app import make_app

log = logging.getLogger("swarmletd")

DEFAULT_SOCKET = "unix:///var/run/swarmlet.sock"


async def _serve(app: web.Application, hosts: list[str]) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    for host in hosts:
        url = urlparse(host)
        if url.scheme == "unix":
            path = Path(url.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            await web.UnixSite(runner, str(path)).start()
            # The API decides what runs as root on every host: root's alone.
            path.chmod(0o600)
        elif url.scheme == "tcp":
            await web.TCPSite(runner, url.hostname, url.port or 2375).start()
        else:
            raise click.BadParameter(f"unsupported --host {host!r}: use unix:// or tcp://")
        log.info("API listening on %s", host)
    return runner


async def _main(
    state_dir: Path,
    hosts: list[str],
    docker_host: str,
    hostname: str,
    container_labels: dict[str, str],
) -> None:
    clock = SystemClock()
    engine = EngineClient(docker_host)
    engine_url = urlparse(docker_host)
    control = NodeControl(
        state_dir=state_dir,
        engine=engine,
        engine_socket=engine_url.path if engine_url.scheme == "unix" else "",
        hostname=hostname,
        clock=clock,
        container_labels=container_labels,
    )
    runner = await _serve(make_app(control, clock), hosts)
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        if main is not None:
            loop.add_signal_handler(signum, main.cancel)
    try:
        await control.run()
    except asyncio.CancelledError:
        log.info("stopping")
    finally:
        await runner.cleanup()
        await engine.close()


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        labels[key] = val
    return labels


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path("/var/lib/swarmlet"),
    show_default=True,
    help="Where the node keeps its identity and, on a manager, the store.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    default=[DEFAULT_SOCKET],
    show_default=True,
    help="Where to serve the Engine API: unix:///path or tcp://ip:port (repeatable).",
)
@click.option(
    "--docker-host",
    default="unix:///var/run/docker.sock",
    show_default=True,
    help="The engine that runs this node's tasks.",
)
@click.option("--hostname", default=socket.gethostname(), help="The node's hostname.")
@click.option(
    "--container-label",
    "container_labels",
    multiple=True,
    help="KEY=VALUE put on every task container this node starts (repeatable).",
)
@click.option("--debug", is_flag=True, help="Log at debug level.")
def main(
    state_dir: Path,
    hosts: tuple[str, ...],
    docker_host: str,
    hostname: str,
    container_labels: tuple[str, ...],
    debug: bool,
) -> None:
    """Run swarmlet on this host."""
    logging.basicConfig(
        level=logging.DEBUG if debug or os.environ.get("SWARMLET_DEBUG") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_main(state_dir, list(hosts), docker_host, hostname, _labels(container_labels)))
