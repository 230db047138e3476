"""Client sockets: who is connected under which sid, and sending to them.

Each socket has its own outbox and writer task, so one slow client never
stalls the channel that feeds everyone; a client whose outbox overflows is
disconnected rather than allowed to grow memory without bound. What an idle
socket is sent goes out at the next turn of the event loop, with whatever else
it was sent meanwhile, in one write: a send per frame per socket is what a
burst of broadcasts to many sockets would otherwise cost. Several
sockets may share a sid (a reconnect that overlaps the old socket): each gets
the events, unlike ComfyUI, where the late close of the old one mutes the new.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OUTBOX_LIMIT = 4096
WRITE_BUFFER_LIMIT = 64 * 1024  # bytes the kernel has not taken yet
BATCH_LIMIT = 256
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


@dataclass(eq=False)
class ClientSocket:
    sid: str
    ws: web.WebSocketResponse
    wants_metadata: bool = False
    # The connection's transport: frames go to it directly unless compressed.
    transport: asyncio.Transport | None = None
    outbox: asyncio.Queue[Frame | None] = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    busy: bool = False  # the writer holds frames not yet handed to the transport
    pending: list[Frame] = field(default_factory=list)  # to write at the next loop turn
    # Whose job events this socket may get: a key's tenant, or everything.
    tenant: str | None = None
    sees_all: bool = True

    def may_see(self, owner: str | None) -> bool:
        return self.sees_all or (owner is not None and owner == self.tenant)

    def _raw(self) -> asyncio.Transport | None:
        transport = self.transport
        if transport is None or self.ws.compress or transport.is_closing():
            return None
        return transport

    def send(self, frame: Frame) -> None:
        if self.pending:
            if len(self.pending) < OUTBOX_LIMIT:
                self.pending.append(frame)
                return
        elif (
            (transport := self._raw()) is not None
            and not self.busy
            and self.outbox.empty()
            and transport.get_write_buffer_size() <= WRITE_BUFFER_LIMIT
        ):
            # Everything sent to this socket until the loop turns goes out in
            # one write: in a burst, one send per socket, not one per frame.
            self.pending.append(frame)
            asyncio.get_running_loop().call_soon(self.flush)
            return
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            # Too slow to keep up: drop the socket; the client reconnects.
            self.outbox = asyncio.Queue(1)
            self.outbox.put_nowait(None)

    def flush(self) -> None:
        frames, self.pending = self.pending, []
        transport = self._raw()
        if frames and transport is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                transport.write(b"".join(ws_frame(frame) for frame in frames))

    def send_stop(self) -> None:
        """Let the writer finish what is queued, then close."""
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(None)

    async def write_loop(self) -> None:
        """Drain the outbox until it says stop or the socket breaks."""
        while (frame := await self.outbox.get()) is not None:
            batch, stop = [frame], False
            while not stop and len(batch) < BATCH_LIMIT and not self.outbox.empty():
                more = self.outbox.get_nowait()
                stop = more is None
                if more is not None:
                    batch.append(more)
            self.busy = True
            try:
                await self._write(batch)
            except (ConnectionError, RuntimeError):
                break
            finally:
                self.busy = False
            if stop:
                break
        self.flush()
        await self.ws.close()

    async def _write(self, batch: list[Frame]) -> None:
        transport = self._raw()
        if transport is None:
            for frame in batch:
                if isinstance(frame, str):
                    await self.ws.send_str(frame)
                else:
                    await self.ws.send_bytes(frame)
            return
        transport.write(b"".join(ws_frame(frame) for frame in batch))
        # Back-pressure: a client that does not read keeps its frames queued
        # here, and is dropped when the outbox overflows.
        while transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            if transport.is_closing():
                raise ConnectionError("client socket closed")
            await asyncio.sleep(0.01)


def event(type_: str, data: Any) -> str:
    return json.dumps({"type": type_, "data": data})


class ClientHub:
    def __init__(self) -> None:
        self._by_sid: dict[str, set[ClientSocket]] = {}
        self.queue_remaining = 0
        self._status_sent = 0
        self._status_due = False

    def add(self, sock: ClientSocket) -> None:
        self._by_sid.setdefault(sock.sid, set()).add(sock)

    def remove(self, sock: ClientSocket) -> None:
        group = self._by_sid.get(sock.sid)
        if group is not None:
            group.discard(sock)
            if not group:
                del self._by_sid[sock.sid]

    def __iter__(self) -> Iterator[ClientSocket]:
        for group in list(self._by_sid.values()):
            yield from list(group)

    def __len__(self) -> int:
        return sum(len(g) for g in self._by_sid.values())

    def of(self, sid: str | None) -> list[ClientSocket]:
        return list(self._by_sid.get(sid, ())) if sid is not None else []

    def broadcast(self, frame: Frame) -> None:
        for sock in self:
            sock.send(frame)

    def to_owner(self, sid: str | None, owner: str | None, frame: Frame) -> None:
        """To the sockets of `sid` that may see a job of tenant `owner`."""
        for sock in self.of(sid):
            if sock.may_see(owner):
                sock.send(frame)

    def broadcast_owned(self, owner: str | None, frame: Frame) -> None:
        """A job's broadcast event: to every socket that may see its tenant."""
        for sock in self:
            if sock.may_see(owner):
                sock.send(frame)

    def status(self, sid: str | None = None) -> str:
        data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": self.queue_remaining}}}
        if sid is not None:
            data["sid"] = sid
        return event("status", data)

    def set_queue_remaining(self, count: int) -> None:
        """Tell every socket the pool-wide queue count when it changes: once
        per loop turn, after the events already on their way (a job's own
        events do not wait behind a status fan-out to every socket), and
        several changes in one turn make one message with the last count."""
        self.queue_remaining = count
        if not self._status_due:
            self._status_due = True
            asyncio.get_running_loop().call_soon(self._send_status)

    def _send_status(self) -> None:
        self._status_due = False
        if self.queue_remaining != self._status_sent:
            self._status_sent = self.queue_remaining
            self.broadcast(self.status())

    async def close_all(self, code: int, message: bytes) -> None:
        for sock in self:
            with contextlib.suppress(Exception):
                await sock.ws.close(code=code, message=message)
