"""Just enough DER (X.690) to read the fields of an X.509 certificate that swarmlet looks at.

A worker reads its own certificate (who it is, until when, who issued it); a manager reads its
peers' after the TLS handshake has checked them. Every one of those certificates was made by
swarmlet's CA. Making and checking signatures stays with ``cryptography``, on the manager
(``swarmlet.pki.ca``): this reader is what keeps a worker from loading it, some 9 MiB of
resident memory, for three names and two dates.

Only definite lengths and low tag numbers, as DER has them; anything else is an error.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
# Context-specific tags: [0] and [3] constructed (explicit), [0] primitive (implicit).
EXPLICIT_0 = 0xA0
EXPLICIT_3 = 0xA3
IMPLICIT_0 = 0x80

_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.DOTALL | re.ASCII
)
_WHITESPACE = re.compile(r"\s+", re.ASCII)
# Longer lengths than this (4 bytes: 4 GiB) are no certificate's.
_MAX_LENGTH_BYTES = 4


class DERError(ValueError):
    """Not the DER the reader expected."""


@dataclass(frozen=True)
class Element:
    tag: int
    # The whole element, tag and length included: a name or a key is compared, and reported,
    # as these bytes.
    der: bytes
    content: bytes

    def children(self) -> list[Element]:
        """The elements a constructed element holds, in order."""
        if not self.tag & 0x20:
            raise DERError(f"tag {self.tag:#x} is not constructed")
        elements, offset = [], 0
        while offset < len(self.content):
            element, offset = _read(self.content, offset)
            elements.append(element)
        return elements

    def expect(self, tag: int) -> Element:
        if self.tag != tag:
            raise DERError(f"expected tag {tag:#x}, found {self.tag:#x}")
        return self


def _read(data: bytes, offset: int) -> tuple[Element, int]:
    """The element at ``offset`` and the offset after it."""
    if offset + 2 > len(data):
        raise DERError("truncated")
    tag, length = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise DERError("high tag numbers are not used in certificates")
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= _MAX_LENGTH_BYTES or start + count > len(data):
            raise DERError("bad length")
        length = int.from_bytes(data[start : start + count], "big")
        # DER's lengths are minimal: one byte below 128, no leading zero byte.
        if length < 0x80 or data[start] == 0:
            raise DERError("length not in DER's minimal form")
        start += count
    end = start + length
    if end > len(data):
        raise DERError("truncated")
    return Element(tag, data[offset:end], data[start:end]), end


def parse(data: bytes) -> Element:
    """The one element that ``data`` is, with nothing after it."""
    element, end = _read(data, 0)
    if end != len(data):
        raise DERError("bytes after the element")
    return element


def pem_certificates(text: str) -> list[bytes]:
    """The DER of each CERTIFICATE block in ``text``, in order; other blocks (a private key)
    and text between them are passed over."""
    blocks = []
    for body in _PEM.findall(text):
        try:
            blocks.append(base64.b64decode(_WHITESPACE.sub("", body), validate=True))
        except binascii.Error as exc:
            raise DERError("bad base64 in a PEM block") from exc
    return blocks
