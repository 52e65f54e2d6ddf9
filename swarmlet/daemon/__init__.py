"""``swarmletd``: the daemon that runs on every host.

It serves the Engine API on its sockets, and runs the manager and/or the agent that the node's
role in the swarm needs. A unix socket is root's alone; TCP is served only with TLS and client
certificates (``--tlsverify``) or, when the operator says so, in plain text
(``--insecure-tcp``). Bad options stop it before anything starts (``options.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from swarmlet.agent.devices import DeviceError, NodeDevices, node_devices
from swarmlet.agent.engine import EngineClient
from swarmlet.api import make_app
from swarmlet.clock import SystemClock
from swarmlet.daemon.control import NodeControl
from swarmlet.daemon.listen import Host, parse_host, serve
from swarmlet.daemon.options import DEFAULT_SOCKET, UsageError, api_tls, parser

log = logging.getLogger("swarmletd")


async def _main(
    state_dir: Path,
    hosts: list[Host],
    tls: ssl.SSLContext | None,
    docker_host: str,
    hostname: str,
    container_labels: dict[str, str],
    min_cert_expiry: timedelta,
    network_plugin: str,
    shared_engine: bool,
    devices: NodeDevices,
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
        min_cert_expiry=min_cert_expiry,
        network_plugin=network_plugin,
        network_suffix=f".{hostname}" if shared_engine else "",
        node_devices=devices,
    )
    # A manager's store is loaded before the API serves: no request finds it without one.
    await control.open()
    app = make_app(control, clock, min_cert_expiry=min_cert_expiry, attacher=control.attacher)
    runner = await serve(app, hosts, tls)
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
        await control.close()
        await engine.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run swarmlet on this host (``swarmletd --help``)."""
    command = parser()
    args = command.parse_args(argv)
    hosts = args.hosts or [parse_host(DEFAULT_SOCKET)]
    try:
        tls = api_tls(
            hosts,
            tlsverify=args.tlsverify,
            insecure_tcp=args.insecure_tcp,
            cacert=args.tlscacert,
            cert=args.tlscert,
            key=args.tlskey,
        )
    except UsageError as exc:
        command.error(str(exc))  # exits 2
    try:
        # The resources the node advertises, and the devices behind them (SGX's found here).
        devices = node_devices(args.node_generic_resources, args.node_devices)
    except DeviceError as exc:
        command.error(str(exc))  # exits 2
    logging.basicConfig(
        level=logging.DEBUG if args.debug or os.environ.get("SWARMLET_DEBUG") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(
        _main(
            args.state_dir,
            hosts,
            tls,
            args.docker_host,
            args.hostname,
            dict(args.container_labels),
            args.min_cert_expiry,
            args.network_plugin,
            args.shared_engine,
            devices,
        )
    )
