"""The cluster's PKI: its root CA, node certificates, join tokens, and the TLS contexts built
from them. Pure functions over PEM text; nothing here touches the store or the network."""

from swarmlet.pki.ca import (
    CertificateInfo,
    Issuer,
    cross_sign,
    issue,
    new_key_and_csr,
    new_root,
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
    "Issuer",
    "JoinToken",
    "cross_sign",
    "issue",
    "new_key_and_csr",
    "new_root",
    "node_tls_info",
    "read_certificate",
    "root_digest",
    "tls_info",
]
