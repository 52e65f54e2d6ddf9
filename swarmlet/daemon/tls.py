"""The TLS context of the Engine API on TCP, as ``dockerd --tlsverify`` serves it.

Every client must present a certificate signed by the operator's CA (``--tlscacert``), and that
CA is the only one trusted: not the system's, and not the swarm's own root, which signs the
nodes' certificates for port 2377 (``swarmlet/pki/tls.py``). The two are kept apart on purpose:
a node's certificate proves membership of the cluster, not the right to drive this host's
engine. The settings the two share (TLS 1.2 at least, a server context from the standard
library's defaults) are three lines, repeated here rather than imported.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def api_server_context(cacert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A server context that requires a client certificate chaining to ``cacert``.

    Raises OSError when a file cannot be read and ssl.SSLError when one is not what it should
    be (not PEM, or a key that does not match the certificate).
    """
    # A server-side default context loads no CA of the system's: only ``cacert`` is trusted.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(cacert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    # Go, and so dockerd, takes every certificate in the CA file as a trust anchor, an
    # intermediate CA included; OpenSSL needs this flag to do the same.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_cert_chain(cert, key)
    return context
