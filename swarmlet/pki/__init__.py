"""The cluster's PKI: what a certificate says, join tokens, a node's credentials on disk, and
the TLS contexts built from them. Pure functions over PEM text; nothing here touches the store
or the network.

The CA itself (a root, issuing, cross-signing, a new key and CSR) is ``swarmlet.pki.ca``,
imported only where a certificate is made: it loads ``cryptography``, which a worker does not
keep in memory (docs/security.md).
"""

from swarmlet.pki.certificate import (
    CertificateInfo,
    node_tls_info,
    read_certificate,
    root_digest,
    tls_info,
)
from swarmlet.pki.credentials import Credentials
from swarmlet.pki.tokens import JoinToken

__all__ = [
    "CertificateInfo",
    "Credentials",
    "JoinToken",
    "node_tls_info",
    "read_certificate",
    "root_digest",
    "tls_info",
]
