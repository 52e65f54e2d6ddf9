"""What a certificate says: its holder, its dates and its issuer, read without ``cryptography``.

A node certificate names the node ID (CN), its role (OU ``swarm-manager`` or
``swarm-worker``) and the cluster (O). Every node reads its own, and reports which of its roots
issued it (the API's TLSInfo, which a root rotation waits on); a manager reads its peers'. None
of that needs more than DER (``swarmlet.pki.der``), so a worker never loads the CA's library
(see ``swarmlet.pki.ca``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from swarmlet.errors import InvalidSpec
from swarmlet.models import NodeRole, TLSInfo
from swarmlet.pki import der

ROLE_UNITS = {NodeRole.MANAGER: "swarm-manager", NodeRole.WORKER: "swarm-worker"}
_ROLES = {unit: role for role, unit in ROLE_UNITS.items()}
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
NOT_A_CERTIFICATE = "invalid certificate: not a PEM or DER X.509 certificate"

# Object identifiers, as the content bytes of their DER.
_COMMON_NAME = bytes([0x55, 0x04, 0x03])  # 2.5.4.3
_ORGANIZATION = bytes([0x55, 0x04, 0x0A])  # 2.5.4.10
_ORGANIZATIONAL_UNIT = bytes([0x55, 0x04, 0x0B])  # 2.5.4.11
_SUBJECT_KEY_ID = bytes([0x55, 0x1D, 0x0E])  # 2.5.29.14
_AUTHORITY_KEY_ID = bytes([0x55, 0x1D, 0x23])  # 2.5.29.35

# The string types of a name's values, and how their bytes are text.
_STRING_ENCODINGS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # TeletexString, as most readers take it
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
}


@dataclass(frozen=True)
class CertificateInfo:
    """What a certificate says about its holder and its issuer."""

    node_id: str
    role: NodeRole | None
    cluster_id: str
    serial: int
    not_before: datetime
    not_after: datetime
    # The issuer's subject, DER in base64 (the API's TLSInfo.CertIssuerSubject).
    issuer_subject: str


def base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def root_digest(cert_pem: str) -> str:
    """Swarm's digest of a root CA: SHA-256 of its PEM, in base 36, 50 characters."""
    return base36(int.from_bytes(hashlib.sha256(cert_pem.encode()).digest()), 50)


@dataclass(frozen=True)
class _Parsed:
    serial: int
    issuer: bytes  # the DER of the issuer's name
    subject: bytes  # the DER of the subject's name
    not_before: datetime
    not_after: datetime
    attributes: dict[bytes, str]  # the subject's first value of each attribute type
    public_key: bytes  # the DER SubjectPublicKeyInfo
    key_id: bytes  # the subject key identifier
    authority_key_id: bytes | None  # the issuer's, when the certificate names it


def _time(element: der.Element) -> datetime:
    text = element.content.decode("ascii")
    if element.tag == der.UTC_TIME and len(text) == 13 and text.endswith("Z"):
        # RFC 5280 4.1.2.5.1: two-digit years from 50 are 19xx.
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif not (element.tag == der.GENERALIZED_TIME and len(text) == 15 and text.endswith("Z")):
        raise der.DERError("a validity time that is not UTC to the second")
    if not text[:14].isdigit():
        raise der.DERError("a validity time that is not digits")
    year, month, day, hour, minute, second = (
        int(text[start : start + width])
        for start, width in ((0, 4), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2))
    )
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _attributes(name: der.Element) -> dict[bytes, str]:
    values: dict[bytes, str] = {}
    for relative in name.expect(der.SEQUENCE).children():
        for attribute in relative.expect(der.SET).children():
            kind, value = attribute.expect(der.SEQUENCE).children()
            encoding = _STRING_ENCODINGS.get(value.tag)
            if encoding is not None:
                values.setdefault(kind.expect(der.OID).content, value.content.decode(encoding))
    return values


def _key_identifiers(
    extensions: list[der.Element], public_key: der.Element
) -> tuple[bytes, bytes | None]:
    """The subject's key identifier and the issuer's (None when not named).

    Without the extension, the subject's is RFC 5280's method 1, SHA-1 of the public key's
    bits: what swarmlet's CA (and ``cryptography``) write into it.
    """
    own: bytes | None = None
    issuer: bytes | None = None
    for extension in extensions:
        kind, *_, value = extension.expect(der.SEQUENCE).children()
        inner = der.parse(value.expect(der.OCTET_STRING).content)
        if kind.expect(der.OID).content == _SUBJECT_KEY_ID:
            own = inner.expect(der.OCTET_STRING).content
        elif kind.content == _AUTHORITY_KEY_ID:
            fields = inner.expect(der.SEQUENCE).children()
            issuer = next((f.content for f in fields if f.tag == der.IMPLICIT_0), None)
    if own is None:
        bits = public_key.children()[1].expect(der.BIT_STRING).content
        own = hashlib.sha1(bits[1:], usedforsecurity=False).digest()
    return own, issuer


def _parse(certificate: bytes) -> _Parsed:
    tbs = der.parse(certificate).expect(der.SEQUENCE).children()[0].expect(der.SEQUENCE)
    fields = tbs.children()
    if fields[0].tag == der.EXPLICIT_0:  # the version; absent in version 1
        fields = fields[1:]
    serial, _, issuer, validity, subject, public_key, *rest = fields
    not_before, not_after = validity.expect(der.SEQUENCE).children()
    # Extensions ::= [3] EXPLICIT SEQUENCE OF Extension, after the optional unique IDs.
    wrapped = [f.children()[0].expect(der.SEQUENCE) for f in rest if f.tag == der.EXPLICIT_3]
    extensions = wrapped[0].children() if wrapped else []
    key_id, authority_key_id = _key_identifiers(extensions, public_key.expect(der.SEQUENCE))
    return _Parsed(
        serial=int.from_bytes(serial.expect(der.INTEGER).content, "big", signed=True),
        issuer=issuer.expect(der.SEQUENCE).der,
        subject=subject.der,
        not_before=_time(not_before),
        not_after=_time(not_after),
        attributes=_attributes(subject),
        public_key=public_key.der,
        key_id=key_id,
        authority_key_id=authority_key_id,
    )


def _parse_all(pem: str) -> list[_Parsed]:
    """Each certificate of ``pem``, at least one."""
    try:
        parsed = [_parse(block) for block in der.pem_certificates(pem)]
    except (ValueError, IndexError) as exc:  # DERError, a bad date or string, a short list
        raise InvalidSpec(NOT_A_CERTIFICATE) from exc
    if not parsed:
        raise InvalidSpec(NOT_A_CERTIFICATE)
    return parsed


def _parse_one(cert: str | bytes) -> _Parsed:
    if isinstance(cert, str):
        return _parse_all(cert)[0]
    try:
        return _parse(cert)
    except (ValueError, IndexError) as exc:
        raise InvalidSpec(NOT_A_CERTIFICATE) from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def read_certificate(cert: str | bytes) -> CertificateInfo:
    """The holder and issuer of a certificate, PEM text (its first certificate) or DER bytes.

    Raises InvalidSpec for something that is not a certificate.
    """
    parsed = _parse_one(cert)
    return CertificateInfo(
        node_id=parsed.attributes.get(_COMMON_NAME, ""),
        role=_ROLES.get(parsed.attributes.get(_ORGANIZATIONAL_UNIT, "")),
        cluster_id=parsed.attributes.get(_ORGANIZATION, ""),
        serial=parsed.serial,
        not_before=parsed.not_before,
        not_after=parsed.not_after,
        issuer_subject=_b64(parsed.issuer),
    )


def node_tls_info(node_pem: str, trust_pem: str) -> TLSInfo:
    """What a node trusts and who issued its certificate: of the certificates after it in
    ``node_pem`` (intermediates) and the trusted roots, the first whose name is the
    certificate's issuer and whose key the certificate names as its issuer's. Empty issuer
    fields when none is.

    The key is told by its identifier, as a TLS library picks a chain's candidates, rather than
    by checking the signature: the certificate came from a manager over a connection verified
    against these roots, and a root rotation's old and new roots share a name (``swarm-ca``)
    but never a key.
    """
    leaf, *candidates = _parse_all(node_pem)
    candidates += _parse_all(trust_pem)
    for candidate in candidates:
        if candidate.subject == leaf.issuer and leaf.authority_key_id in (None, candidate.key_id):
            return TLSInfo(
                trust_root=trust_pem,
                cert_issuer_subject=_b64(candidate.subject),
                cert_issuer_public_key=_b64(candidate.public_key),
            )
    return TLSInfo(trust_root=trust_pem)


@functools.lru_cache(maxsize=8)
def tls_info(root_pem: str) -> TLSInfo:
    """The TLSInfo of certificates issued by the root ``root_pem``."""
    root = _parse_one(root_pem)
    return TLSInfo(
        trust_root=root_pem,
        cert_issuer_subject=_b64(root.subject),
        cert_issuer_public_key=_b64(root.public_key),
    )
