"""Client sockets: who is connected under which sid, and sending to them.

Each socket has its own outbox and writer task, so one slow client never
stalls the channel that feeds everyone; a client whose outbox overflows is
disconnected rather than allowed to grow memory without bound. Several
sockets may share a sid (a reconnect that overlaps the old socket): each gets
the events, unlike ComfyUI, where the late close of the old one mutes the new.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OUTBOX_LIMIT = 4096
Frame = str | bytes


@dataclass(eq=False)
class ClientSocket:
    sid: str
    ws: web.WebSocketResponse
    wants_metadata: bool = False
    outbox: asyncio.Queue[Frame | None] = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))

    def send(self, frame: Frame) -> None:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            # Too slow to keep up: drop the socket; the client reconnects.
            self.outbox = asyncio.Queue(1)
            self.outbox.put_nowait(None)

    def send_stop(self) -> None:
        """Let the writer finish what is queued, then close."""
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(None)

    async def write_loop(self) -> None:
        """Drain the outbox until it says stop or the socket breaks."""
        while (frame := await self.outbox.get()) is not None:
            try:
                if isinstance(frame, str):
                    await self.ws.send_str(frame)
                else:
                    await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                break
        await self.ws.close()


def event(type_: str, data: Any) -> str:
    return json.dumps({"type": type_, "data": data})


class ClientHub:
    def __init__(self) -> None:
        self._by_sid: dict[str, set[ClientSocket]] = {}
        self.queue_remaining = 0

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

    def to_sid(self, sid: str | None, frame: Frame) -> None:
        for sock in self.of(sid):
            sock.send(frame)

    def broadcast(self, frame: Frame) -> None:
        for sock in self:
            sock.send(frame)

    def status(self, sid: str | None = None) -> str:
        data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": self.queue_remaining}}}
        if sid is not None:
            data["sid"] = sid
        return event("status", data)

    def set_queue_remaining(self, count: int) -> None:
        """Tell every socket the pool-wide queue count, when it changes."""
        if count != self.queue_remaining:
            self.queue_remaining = count
            self.broadcast(self.status())

    async def close_all(self, code: int, message: bytes) -> None:
        for sock in self:
            with contextlib.suppress(Exception):
                await sock.ws.close(code=code, message=message)
