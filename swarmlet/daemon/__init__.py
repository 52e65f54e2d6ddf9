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
import socket
import ssl
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import click

from swarmlet.agent.engine import EngineClient
from swarmlet.clock import SystemClock
from swarmlet.daemon.control import NodeControl
from swarmlet.daemon.listen import Host, serve
from swarmlet.daemon.options import api_tls, duration_option, hosts_option
from swarmlet.manager.api.app import make_app

log = logging.getLogger("swarmletd")

DEFAULT_SOCKET = "unix:///var/run/swarmlet.sock"


async def _main(
    state_dir: Path,
    hosts: list[Host],
    tls: ssl.SSLContext | None,
    docker_host: str,
    hostname: str,
    container_labels: dict[str, str],
    min_cert_expiry: timedelta,
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
    )
    app = make_app(control, clock, min_cert_expiry=min_cert_expiry)
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
    callback=hosts_option,
    default=[DEFAULT_SOCKET],
    show_default=True,
    help="Where to serve the Engine API: unix:///path or tcp://ip:port (repeatable). TCP needs"
    " --tlsverify or --insecure-tcp; its default port is 2376 with TLS, 2375 without.",
)
@click.option(
    "--tlsverify",
    is_flag=True,
    help="Serve the API's TCP sockets with TLS and require a client certificate signed by"
    " --tlscacert (dockerd's --tlsverify).",
)
# dockerd defaults these to ~/.docker/{ca,cert,key}.pem. Not here: swarmletd runs as root, and
# ~/.docker is the docker CLI's directory, where cert.pem and key.pem are a *client's*
# identity; a default would quietly serve with a client's key, or fail on a file the operator
# never named. The CA that may drive every host is the operator's choice, so it is named.
@click.option(
    "--tlscacert",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="With --tlsverify: the CA whose client certificates are accepted (and no other).",
)
@click.option(
    "--tlscert",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="With --tlsverify: the API's server certificate (PEM).",
)
@click.option(
    "--tlskey",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="With --tlsverify: the server certificate's private key (PEM).",
)
@click.option(
    "--insecure-tcp",
    is_flag=True,
    help="Serve the API's TCP sockets in plain text, without TLS: whoever reaches them is root"
    " on this host. For a trusted, isolated network only.",
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
@click.option(
    "--min-cert-expiry",
    default="1h",
    callback=duration_option,
    show_default=True,
    help="The shortest node certificate expiry a swarm may be given (Go duration: 1h, 90s,"
    " 10m). Swarm's minimum is 1h; a shorter one exists so that tests can use short-lived"
    " certificates.",
)
@click.option("--debug", is_flag=True, help="Log at debug level.")
def main(
    state_dir: Path,
    hosts: tuple[Host, ...],
    tlsverify: bool,
    tlscacert: Path | None,
    tlscert: Path | None,
    tlskey: Path | None,
    insecure_tcp: bool,
    docker_host: str,
    hostname: str,
    container_labels: tuple[str, ...],
    min_cert_expiry: timedelta,
    debug: bool,
) -> None:
    """Run swarmlet on this host."""
    tls = api_tls(
        hosts,
        tlsverify=tlsverify,
        insecure_tcp=insecure_tcp,
        cacert=tlscacert,
        cert=tlscert,
        key=tlskey,
    )
    labels = _labels(container_labels)
    logging.basicConfig(
        level=logging.DEBUG if debug or os.environ.get("SWARMLET_DEBUG") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_main(state_dir, list(hosts), tls, docker_host, hostname, labels, min_cert_expiry))
