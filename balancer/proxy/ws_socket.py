"""One client WebSocket as the hub writes to it: framing and its outbox.

Each message is framed once (RFC 6455, unmasked and uncompressed), however
many sockets get it; the bytes are queued per socket and written to its
transport in one write. The transport's own buffer is the outbox: a client
that does not read is disconnected once more than `MAX_UNSENT` bytes wait
for it, rather than allowed to grow memory without bound. Sockets never
negotiate permessage-deflate: it would compress each frame once per socket.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, cast

from aiohttp import web

MAX_UNSENT = 8 * 1024 * 1024  # bytes a socket may leave unread before it is dropped
Frame = str | bytes


def ws_frame(frame: Frame) -> bytes:
    """An unmasked, uncompressed server frame (RFC 6455 5.2): text or binary."""
    payload, opcode = (frame.encode(), 0x1) if isinstance(frame, str) else (frame, 0x2)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def event(type_: str, data: Any) -> str:
    return json.dumps({"type": type_, "data": data})


class ClientSocket:
    """One client's WebSocket: its identity, the bytes it has yet to get,
    and the pool-wide count it was last sent (ws_status.py)."""

    __slots__ = (
        "_pending",
        "_transport",
        "count",
        "sees_all",
        "sid",
        "tenant",
        "wants_metadata",
        "ws",
    )

    def __init__(
        self,
        sid: str,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        tenant: str | None,
        sees_all: bool,
        count: int,
    ) -> None:
        self.sid = sid
        self.ws = ws
        self.wants_metadata = False
        # Whose job events this socket may get: a key's tenant, or everything.
        self.tenant = tenant
        self.sees_all = sees_all
        self.count = count
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport | None, transport)
        self._pending: list[bytes] = []

    def may_see(self, owner: str | None) -> bool:
        return self.sees_all or (owner is not None and owner == self.tenant)

    def push(self, data: bytes) -> bool:
        """Queue framed bytes; True when the socket had nothing queued yet."""
        self._pending.append(data)
        return len(self._pending) == 1

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
            if transport.get_write_buffer_size() > MAX_UNSENT:
                transport.abort()  # too slow to keep up: the client reconnects
        except (ConnectionError, RuntimeError):
            pass
