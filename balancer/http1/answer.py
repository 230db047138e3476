"""One HTTP/1.x answer, read from the bytes of a connection as they come.

The answers the balancer reads whole from a backend (`balancer.upstream`):
a status line, headers, and a body framed by `Content-Length`, by
`Transfer-Encoding: chunked`, or by the connection's end. Interim answers
(1xx) are skipped; 204 and 304 have no body. Anything else malformed raises
BadAnswer, and the connection is not used again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

HEAD_LIMIT = 64 * 1024  # status line and headers, like aiohttp's client (8 KiB a line)
NO_BODY = frozenset({204, 304})


class BadAnswer(Exception):
    """The bytes are not an HTTP/1.x answer."""


@dataclass
class Head:
    status: int
    version: bytes
    headers: dict[bytes, bytes] = field(default_factory=dict)

    def value(self, name: bytes) -> bytes | None:
        return self.headers.get(name)

    @property
    def content_type(self) -> str:
        """The media type, as aiohttp's `content_type` gives it."""
        raw = self.headers.get(b"content-type")
        if raw is None:
            return "application/octet-stream"
        return raw.split(b";", 1)[0].strip().lower().decode("latin-1")

    @property
    def keeps_open(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get(b"connection", b"").split(b",")}
        if self.version == b"HTTP/1.0":
            return b"keep-alive" in tokens
        return b"close" not in tokens


def parse_head(raw: bytes) -> Head:
    """The status line and headers (without the blank line after them)."""
    lines = raw.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise BadAnswer(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    if rest[3:4] not in (b"", b" "):
        raise BadAnswer(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    head = Head(int(code), version)
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise BadAnswer(f"malformed header line: {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        if key in head.headers and key != b"set-cookie":
            if key == b"content-length" and head.headers[key] != value:
                raise BadAnswer("conflicting Content-Length headers")
            value = head.headers[key] + b", " + value
        head.headers[key] = value
    return head


class AnswerReader:
    """Feed it a connection's bytes; `done` once one whole answer is read.
    Bytes after it (a server that answers more than asked) are an error."""

    def __init__(self, head_limit: int = HEAD_LIMIT) -> None:
        self.head: Head | None = None
        self.body = bytearray()
        self.done = False
        self._buffer = bytearray()
        self._head_limit = head_limit
        self._left = 0  # bytes of the body (or of the current chunk) still to come
        self._mode = "head"  # head, length, chunk-size, chunk-data, chunk-end, trailer, close

    def feed(self, data: bytes) -> None:
        if self.done:
            if data:
                raise BadAnswer("bytes after the answer")
            return
        self._buffer += data
        while not self.done and self._step():
            pass

    def end(self) -> None:
        """The connection ended: complete if the body runs to its end, else BadAnswer."""
        if self.done:
            return
        if self._mode != "close":
            raise BadAnswer("the connection ended before the answer did")
        self.body += self._buffer
        self._buffer.clear()
        self.done = True

    @property
    def reusable(self) -> bool:
        """The connection may carry the next request."""
        return (
            self.done and self._mode != "close" and self.head is not None and (self.head.keeps_open)
        )

    def _step(self) -> bool:
        """One step of reading; False when it needs more bytes."""
        if self._mode == "close":  # everything to the connection's end
            return False
        step: Callable[[AnswerReader], bool] = STEPS[self._mode]
        return step(self)

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self._head_limit:
                raise BadAnswer("answer head too large")
            return False
        head = parse_head(bytes(self._buffer[:end]))
        del self._buffer[: end + 4]
        if 100 <= head.status < 200:  # interim (100 Continue): the answer follows
            return True
        self.head = head
        self._frame(head)
        return True

    def _frame(self, head: Head) -> None:
        coding = head.value(b"transfer-encoding")
        length = head.value(b"content-length")
        if head.status in NO_BODY:
            self._finish()
        elif coding is not None:
            if coding.strip().lower() != b"chunked":
                raise BadAnswer(f"unsupported Transfer-Encoding: {coding[:40]!r}")
            self._mode = "chunk-size"
        elif length is not None:
            if not length.isdigit():
                raise BadAnswer(f"bad Content-Length: {length[:40]!r}")
            self._left = int(length)
            self._mode = "length"
        else:
            self._mode = "close"

    def _take_body(self) -> bool:
        """Move what is buffered of the `_left` body bytes to come; True once all came."""
        take = min(self._left, len(self._buffer))
        self.body += self._buffer[:take]
        del self._buffer[:take]
        self._left -= take
        return not self._left

    def _read_length(self) -> bool:
        if not self._take_body():
            return False
        self._finish()
        return True

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > self._head_limit:
                raise BadAnswer("chunk line too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _read_chunk_size(self) -> bool:
        line = self._line()
        if line is None:
            return False
        size = line.split(b";", 1)[0].strip()
        try:
            self._left = int(size, 16)
        except ValueError:
            raise BadAnswer(f"bad chunk size: {size[:40]!r}") from None
        self._mode = "chunk-data" if self._left else "trailer"
        return True

    def _read_chunk_data(self) -> bool:
        if not self._take_body():
            return False
        self._mode = "chunk-end"
        return True

    def _read_chunk_end(self) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._buffer[:2] != b"\r\n":
            raise BadAnswer("chunk not followed by CRLF")
        del self._buffer[:2]
        self._mode = "chunk-size"
        return True

    def _read_trailer(self) -> bool:
        line = self._line()
        if line is None:
            return False
        if not line:
            self._finish()
        return True

    def _finish(self) -> None:
        self.done = True
        if self._buffer:
            raise BadAnswer("bytes after the answer")


STEPS = {
    "head": AnswerReader._read_head,
    "length": AnswerReader._read_length,
    "chunk-size": AnswerReader._read_chunk_size,
    "chunk-data": AnswerReader._read_chunk_data,
    "chunk-end": AnswerReader._read_chunk_end,
    "trailer": AnswerReader._read_trailer,
}
