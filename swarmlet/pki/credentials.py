"""A node's TLS identity on disk: the roots it trusts, and its certificate with its key.

They live in ``<state dir>/certificates`` (Swarm: ``/var/lib/docker/swarm/certificates``).
The certificate and its key share one file, readable by root alone and replaced whole, so a
renewal that stops half way never leaves a certificate beside a key that does not match it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from swarmlet.pki.certificate import CertificateInfo, read_certificate

FOLDER = "certificates"


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename) with ``mode``."""
    temporary = path.with_name(path.name + ".tmp")
    # A file left by a crash may have a wider mode: never write a key into it.
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, mode)
    temporary.replace(path)


@dataclass(frozen=True)
class Credentials:
    folder: Path

    @classmethod
    def of(cls, state_dir: Path) -> Credentials:
        return cls(state_dir / FOLDER)

    @property
    def trust_path(self) -> Path:
        return self.folder / "swarm-root-ca.crt"

    @property
    def node_path(self) -> Path:
        """The node's certificate followed by its private key (PEM)."""
        return self.folder / "swarm-node.pem"

    def exists(self) -> bool:
        return self.trust_path.exists() and self.node_path.exists()

    def save(self, *, trust_pem: str, cert_pem: str, key_pem: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(self.node_path, cert_pem + key_pem)
        write_private(self.trust_path, trust_pem, 0o644)

    def save_trust(self, trust_pem: str) -> None:
        write_private(self.trust_path, trust_pem, 0o644)

    def trust(self) -> str:
        return self.trust_path.read_text()

    def contents(self) -> tuple[bytes, bytes]:
        """Both files as they are now (to tell whether they changed)."""
        return self.trust_path.read_bytes(), self.node_path.read_bytes()

    def certificate(self) -> CertificateInfo:
        # read_certificate takes the first PEM block of the file: the certificate.
        return read_certificate(self.node_path.read_text())

    def forget(self) -> None:
        for path in (self.trust_path, self.node_path):
            path.unlink(missing_ok=True)
