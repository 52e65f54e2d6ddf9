"""TLS contexts for the manager's port (2377) and the agents that talk to it.

The manager asks for a client certificate but does not demand one at the handshake
(``CERT_OPTIONAL``, Swarm's ``VerifyClientCertIfGiven``): a joining node has none yet and may
only fetch the root and ask for its first certificate. A certificate that is presented must
chain to the cluster's root and be in date, or the handshake fails; what each path needs beyond
that (a session needs a certificate of a node that still exists) is decided per request.
"""

from __future__ import annotations

import asyncio.sslproto
import ssl

from swarmlet.models import NodeRole
from swarmlet.pki.certificate import ROLE_UNITS, CertificateInfo, read_certificate
from swarmlet.pki.credentials import Credentials

# The name an agent expects in the manager's certificate.
MANAGER_NAME = ROLE_UNITS[NodeRole.MANAGER]


# Bytes asyncio keeps per TLS connection for reading (its default is 256 KiB, zero-filled, so
# resident): a manager with 1,000 agents held 250 MB of buffers alone. Any size works (a
# smaller buffer only means more reads); a TLS record carries at most 16 KiB of data.
TLS_READ_BUFFER = 16 * 1024


def use_small_tls_buffers() -> None:
    """Make asyncio's TLS connections (from now on, in this process) read TLS_READ_BUFFER
    bytes at a time. ``max_size`` is a class attribute every SSLProtocol sizes its buffer by."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def _base(purpose: ssl.Purpose, cadata: str | None = None) -> ssl.SSLContext:
    # Every process that speaks TLS to or as a manager makes its contexts here first.
    use_small_tls_buffers()
    # Given ``cadata`` the context trusts those roots alone; without it a verifying context
    # also loads the host's system store.
    context = ssl.create_default_context(purpose, cadata=cadata)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def server_context(credentials: Credentials) -> ssl.SSLContext:
    context = _base(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=credentials.trust())
    context.load_cert_chain(credentials.node_path)
    return context


def reloading_server_context(credentials: Credentials) -> ssl.SSLContext:
    """A server context that follows the node's credentials on disk: each handshake uses a
    context of the files as they are then, so a renewed certificate or a new root is used
    without restarting the listener. A context is loaded again only when the files changed:
    one per connection, each holding its own copy of the chain and the trust store, cost a
    manager about 100 KB per connected agent (benchmarks/scale.py)."""
    loaded = (credentials.contents(), server_context(credentials))

    def swap(connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        nonlocal loaded
        contents = credentials.contents()
        if contents != loaded[0]:
            loaded = (contents, server_context(credentials))
        connection.context = loaded[1]

    context = loaded[1]
    context.sni_callback = swap
    return context


def client_context(trust_pem: str, credentials: Credentials | None = None) -> ssl.SSLContext:
    """Trusts ``trust_pem`` only, checks the server is a manager, presents the node's
    certificate when given."""
    context = _base(ssl.Purpose.SERVER_AUTH, trust_pem)
    if credentials is not None:
        context.load_cert_chain(credentials.node_path)
    return context


def unverified_context() -> ssl.SSLContext:
    """For the one request made before the root is known: fetching it, to check its digest
    against the join token. Nothing secret is sent on it."""
    # Not ``_base``: without ``cadata`` it would load the host's system store (tens of
    # milliseconds, most of a join's cost) only to verify nothing.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> CertificateInfo | None:
    """The verified client certificate of a connection, None when none was presented."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return read_certificate(der) if der else None
