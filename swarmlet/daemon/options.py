"""swarmletd's command line, read and checked before anything starts.

A bad value stops the daemon at once with a usage error (exit status 2), before a socket is
opened or the state directory is touched. The parser is the standard library's: swarmletd's
flags are dockerd's kind (no subcommands), and click, which the ``swarmlet`` CLI uses, would
stay in the memory of a daemon that reads its command line once (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import socket
import ssl
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from swarmlet import genericresource
from swarmlet.agent.devices import DeviceError, DeviceMapping, parse_device_flag
from swarmlet.daemon.duration import parse_duration
from swarmlet.daemon.listen import Host, TcpHost, parse_host
from swarmlet.daemon.tls import api_server_context

DEFAULT_SOCKET = "unix:///var/run/swarmlet.sock"

PLAIN_TCP_REFUSED = (
    "refusing to serve the Engine API on {hosts} in plain text: whoever reaches it is root on "
    "this host. Use --tlsverify (with --tlscacert, --tlscert and --tlskey) to require client "
    "certificates signed by your CA, or --insecure-tcp to serve plain TCP anyway."
)


class UsageError(Exception):
    """A combination of options swarmletd refuses."""


def host_value(value: str) -> Host:
    """A ``--host`` value: ``unix:///path`` or ``tcp://ip:port``."""
    try:
        return parse_host(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_value(value: str) -> timedelta:
    """A positive Go-style duration: ``1h``, ``90s``, ``1h30m``, ``500ms``."""
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive duration")
    return duration


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file {value!r} does not exist")
    return path


def label_value(value: str) -> tuple[str, str]:
    key, sep, label = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, label


def generic_resource_value(value: str) -> str:
    """A ``--node-generic-resource`` value, checked as dockerd's flag checks it."""
    try:
        return genericresource.flag_value(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def device_value(value: str) -> tuple[str, tuple[DeviceMapping, ...]]:
    """A ``--node-device`` value: ``NAME=/dev/a[:/in/container][,/dev/b...]``."""
    try:
        return parse_device_flag(value)
    except DeviceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="swarmletd",
        description="Run swarmlet on this host.",
        allow_abbrev=False,  # a flag is spelt out, as dockerd's are
    )
    add = command.add_argument
    add(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/swarmlet"),
        metavar="DIR",
        help="Where the node keeps its identity and, on a manager, the store (default:"
        " %(default)s).",
    )
    add(
        "--host",
        dest="hosts",
        action="append",
        type=host_value,
        metavar="URL",
        help=f"Where to serve the Engine API: unix:///path or tcp://ip:port (repeatable;"
        f" {DEFAULT_SOCKET} when none is given). TCP needs --tlsverify or --insecure-tcp; its"
        " default port is 2376 with TLS, 2375 without.",
    )
    add(
        "--tlsverify",
        action="store_true",
        help="Serve the API's TCP sockets with TLS and require a client certificate signed by"
        " --tlscacert (dockerd's --tlsverify).",
    )
    # dockerd defaults these to ~/.docker/{ca,cert,key}.pem. Not here: swarmletd runs as root,
    # and ~/.docker is the docker CLI's directory, where cert.pem and key.pem are a *client's*
    # identity; a default would quietly serve with a client's key, or fail on a file the
    # operator never named. The CA that may drive every host is the operator's choice, so it
    # is named.
    add(
        "--tlscacert",
        type=existing_file,
        metavar="FILE",
        help="With --tlsverify: the CA whose client certificates are accepted (and no other).",
    )
    add(
        "--tlscert",
        type=existing_file,
        metavar="FILE",
        help="With --tlsverify: the API's server certificate (PEM).",
    )
    add(
        "--tlskey",
        type=existing_file,
        metavar="FILE",
        help="With --tlsverify: the server certificate's private key (PEM).",
    )
    add(
        "--insecure-tcp",
        action="store_true",
        help="Serve the API's TCP sockets in plain text, without TLS: whoever reaches them is"
        " root on this host. For a trusted, isolated network only.",
    )
    add(
        "--docker-host",
        default="unix:///var/run/docker.sock",
        metavar="URL",
        help="The engine that runs this node's tasks (default: %(default)s).",
    )
    add(
        "--hostname",
        default=socket.gethostname(),
        help="The node's hostname (default: this host's, %(default)s).",
    )
    add(
        "--container-label",
        dest="container_labels",
        action="append",
        type=label_value,
        default=[],
        metavar="KEY=VALUE",
        help="KEY=VALUE put on every task container this node starts (repeatable).",
    )
    add(
        "--node-generic-resource",
        dest="node_generic_resources",
        action="append",
        type=generic_resource_value,
        default=[],
        metavar="NAME=VALUE",
        help="A resource this node advertises beyond CPUs and memory, as dockerd's flag"
        " (repeatable): NAME=COUNT (discrete, e.g. sgx=2) or NAME=ID, once per ID (named, e.g."
        " gpu=UUID1 gpu=UUID2). Services reserve them with --generic-resource NAME=N.",
    )
    add(
        "--node-device",
        dest="node_devices",
        action="append",
        type=device_value,
        default=[],
        metavar="NAME=/dev/a[:/path][,...]",
        help="The device nodes behind the generic resource NAME (repeatable; each at its own"
        " path in the container unless :/path is given): a task given NAME gets them."
        " NAME is advertised as --node-generic-resource gives it, else as NAME=1. SGX's devices"
        " (/dev/isgx, /dev/sgx_enclave, /dev/sgx/enclave, /dev/sgx_provision) are found"
        " without it, as sgx (docs/devices.md).",
    )
    add(
        "--min-cert-expiry",
        type=duration_value,
        default="1h",
        metavar="DURATION",
        help="The shortest node certificate expiry a swarm may be given (Go duration: 1h, 90s,"
        " 10m; default: %(default)s). Swarm's minimum is 1h; a shorter one exists so that"
        " tests can use short-lived certificates.",
    )
    add(
        "--network-plugin",
        default="swarmlet",
        metavar="NAME",
        help="The name this node's network driver has on its engine (the plugin socket"
        " /run/docker/plugins/NAME.sock; default: %(default)s). Each swarmletd sharing an engine's"
        " plugin directory needs its own.",
    )
    add(
        "--shared-engine",
        action="store_true",
        help="The engine also runs other swarmletds' tasks (a lab on one machine): this node's"
        " copies of the overlay networks on it are named NETWORK.HOSTNAME.",
    )
    add("--debug", action="store_true", help="Log at debug level.")
    return command


def api_tls(
    hosts: Sequence[Host],
    *,
    tlsverify: bool,
    insecure_tcp: bool,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
) -> ssl.SSLContext | None:
    """The TLS context of the API's TCP sockets, None to serve them in plain text.

    Raises UsageError for any combination that is not either a complete ``--tlsverify``
    or an explicit ``--insecure-tcp``.
    """
    if tlsverify and insecure_tcp:
        raise UsageError("--tlsverify and --insecure-tcp contradict each other: pick one")
    files = {"--tlscacert": cacert, "--tlscert": cert, "--tlskey": key}
    if not tlsverify:
        given = [name for name, path in files.items() if path is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: used only with --tlsverify")
        tcp = [host.url for host in hosts if isinstance(host, TcpHost)]
        if tcp and not insecure_tcp:
            raise UsageError(PLAIN_TCP_REFUSED.format(hosts=", ".join(tcp)))
        return None
    if cacert is None or cert is None or key is None:
        missing = ", ".join(name for name, path in files.items() if path is None)
        raise UsageError(
            f"--tlsverify needs --tlscacert, --tlscert and --tlskey (missing {missing})"
        )
    try:
        return api_server_context(cacert, cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"--tlsverify: cannot use --tlscacert {cacert}, --tlscert {cert}, --tlskey {key}: {exc}"
        ) from exc
