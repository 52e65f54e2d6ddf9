"""The engine's container log stream, read: frames out of its multiplexed stream, and each
message's timestamp, attributes and text (pure, no I/O).

``GET /containers/{id}/logs`` answers a container without a TTY in Docker's multiplexed
stream: frames of an 8-byte header (the stream: 1 stdout, 2 stderr, 3 the daemon's error; three
zero bytes; the payload's length, big-endian) and the payload. A TTY container's stream is raw:
lines of stdout. Asked with ``timestamps=1&details=1``, each message reads ``<timestamp>
<attributes> <text>``: the attributes are the log driver's, ``k=v`` query-escaped and joined by
``,`` (empty when there are none, which leaves two spaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

STDOUT = 1
STDERR = 2
SYSTEMERR = 3
_HEADER = 8


@dataclass(frozen=True)
class LogFrame:
    stream: int
    data: bytes


class Demuxer:
    """Frames out of the engine's stream, fed as it comes in chunks of any size."""

    def __init__(self, *, raw: bool) -> None:
        self._raw = raw
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[LogFrame]:
        self._buffer += chunk
        return self._lines() if self._raw else self._frames()

    def end(self) -> list[LogFrame]:
        """What is left when the stream ends: a raw stream's last line without its newline (a
        multiplexed stream cut inside a frame loses that frame)."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return [LogFrame(STDOUT, rest)] if self._raw and rest else []

    def _lines(self) -> list[LogFrame]:
        end = self._buffer.rfind(b"\n") + 1
        if end == 0:
            return []
        lines = bytes(self._buffer[:end]).splitlines(keepends=True)
        del self._buffer[:end]
        return [LogFrame(STDOUT, line) for line in lines]

    def _frames(self) -> list[LogFrame]:
        frames = []
        start = 0
        buffer = self._buffer
        while len(buffer) - start >= _HEADER:
            size = int.from_bytes(buffer[start + 4 : start + 8], "big")
            if len(buffer) - start - _HEADER < size:
                break
            payload = bytes(buffer[start + _HEADER : start + _HEADER + size])
            frames.append(LogFrame(buffer[start], payload))
            start += _HEADER + size
        del buffer[:start]
        return frames


@dataclass(frozen=True)
class LogMessage:
    timestamp: str
    attrs: tuple[tuple[str, str], ...]
    text: bytes


def parse_message(data: bytes) -> LogMessage:
    """A message the engine gave with ``timestamps=1&details=1``."""
    timestamp, _, rest = data.partition(b" ")
    details, _, text = rest.partition(b" ")
    return LogMessage(timestamp.decode("ascii", "replace"), parse_attrs(details), text)


def parse_attrs(details: bytes) -> tuple[tuple[str, str], ...]:
    """``k=v,k=v``, query-escaped (Go's url.QueryEscape), as ``(k, v)`` pairs."""
    pairs = []
    for item in details.decode("utf-8", "replace").split(","):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote_plus(key), unquote_plus(value)))
    return tuple(pairs)
