"""swarmletd's command-line values, read and checked before anything starts.

A bad value stops the daemon at once with click's usage error (exit status 2), before a socket
is opened or the state directory is touched.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import click

from swarmlet.daemon.duration import parse_duration
from swarmlet.daemon.listen import Host, TcpHost, parse_host
from swarmlet.daemon.tls import api_server_context

PLAIN_TCP_REFUSED = (
    "refusing to serve the Engine API on {hosts} in plain text: whoever reaches it is root on "
    "this host. Use --tlsverify (with --tlscacert, --tlscert and --tlskey) to require client "
    "certificates signed by your CA, or --insecure-tcp to serve plain TCP anyway."
)


# Callbacks rather than ParamType subclasses: ParamType is generic in newer click releases
# and not in older ones that pyproject.toml still allows (click>=8.1).
def hosts_option(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[Host, ...]:
    """``--host`` values: ``unix:///path`` or ``tcp://ip:port``."""
    try:
        return tuple(parse_host(value) for value in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def duration_option(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """A positive Go-style duration: ``1h``, ``90s``, ``1h30m``, ``500ms``."""
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if duration <= timedelta(0):
        raise click.BadParameter(f"{value!r} is not a positive duration", ctx, param)
    return duration


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

    Raises click.UsageError for any combination that is not either a complete ``--tlsverify``
    or an explicit ``--insecure-tcp``.
    """
    if tlsverify and insecure_tcp:
        raise click.UsageError("--tlsverify and --insecure-tcp contradict each other: pick one")
    files = {"--tlscacert": cacert, "--tlscert": cert, "--tlskey": key}
    if not tlsverify:
        given = [name for name, path in files.items() if path is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)}: used only with --tlsverify")
        tcp = [host.url for host in hosts if isinstance(host, TcpHost)]
        if tcp and not insecure_tcp:
            raise click.UsageError(PLAIN_TCP_REFUSED.format(hosts=", ".join(tcp)))
        return None
    if cacert is None or cert is None or key is None:
        missing = ", ".join(name for name, path in files.items() if path is None)
        raise click.UsageError(
            f"--tlsverify needs --tlscacert, --tlscert and --tlskey (missing {missing})"
        )
    try:
        return api_server_context(cacert, cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise click.UsageError(
            f"--tlsverify: cannot use --tlscacert {cacert}, --tlscert {cert}, --tlskey {key}: {exc}"
        ) from exc
