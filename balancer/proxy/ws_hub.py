"""Client sockets: who is connected under which sid, and sending to them.

Each message is framed once (RFC 6455, unmasked and uncompressed), however
many sockets get it. A broadcast's bytes are appended to each socket's
buffer, and one callback per loop turn writes every socket's buffer to its
transport in one write. A job's own frame, for its client's sockets only, is
written at once, with what each of them had buffered before it: it never
waits for that callback, nor behind a broadcast or a status round to every
socket. Frames reach a socket in the order they were sent to it.

The pool-wide `status` goes to every socket, so with 1,000 sockets one costs
about as much as 1,000 job events: it is paced and sliced. A change of the
count starts a round at once when none ran in the last `status_every`
seconds, else when that time is up (the changes in between make no message
of their own). A round reaches `STATUS_SLICE` sockets per loop turn, after
that turn's events (in the same write), so a job's own events never wait for
a whole round; each slice carries the count of its turn, so a socket never
gets a count older than one it was sent (a job's client is sent the count
among its job's events, ws_relay.py). A round over which the count changed
is followed by another.

The transport's own buffer is the outbox: a client that does not read is
disconnected once more than `MAX_UNSENT` bytes wait for it, rather than
allowed to grow memory without bound. Sockets never negotiate
permessage-deflate: it would compress each frame once per socket.

Several sockets may share a sid (a reconnect that overlaps the old socket):
each gets the events, unlike ComfyUI, where the late close of the old one
mutes the new. Access checks are skipped while no connected socket is
restricted to a tenant (no API keys, or only admin keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, cast

from aiohttp import web

MAX_UNSENT = 8 * 1024 * 1024  # bytes a socket may leave unread before it is dropped
# Seconds: the shortest time from one status round to the next. At 0.25 s,
# with 1,000 idle sockets, status rounds were 60 % of the balancer's CPU in
# bench ws's targeted jobs (each job's start and end changes the count).
STATUS_EVERY = 1.0
STATUS_SLICE = 32  # sockets a status round writes per loop turn
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


class ClientSocket:
    """One client's WebSocket: its identity and the bytes it has yet to get."""

    __slots__ = ("_pending", "_transport", "sees_all", "sid", "tenant", "wants_metadata", "ws")

    def __init__(
        self,
        sid: str,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        tenant: str | None,
        sees_all: bool,
    ) -> None:
        self.sid = sid
        self.ws = ws
        self.wants_metadata = False
        # Whose job events this socket may get: a key's tenant, or everything.
        self.tenant = tenant
        self.sees_all = sees_all
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


def event(type_: str, data: Any) -> str:
    return json.dumps({"type": type_, "data": data})


class ClientHub:
    def __init__(
        self, status_every: float = STATUS_EVERY, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._by_sid: dict[str, dict[ClientSocket, None]] = {}
        self._all: dict[ClientSocket, None] = {}  # every socket, in connection order
        self._restricted = 0  # sockets that see only one tenant's jobs
        self._dirty: list[ClientSocket] = []
        self._flush_due = False
        self.queue_remaining = 0
        # The count every socket was last sent by a round; None while the
        # sockets hold different ones (it changed during a round).
        self._status_sent: int | None = 0
        self.status_every = status_every
        self.now = now
        self._round_at = -math.inf  # when the last status round began
        self._round: list[ClientSocket] = []  # sockets the current round has yet to write
        self._round_first = False  # the round's first slice is yet to be written
        self._count_frame = (0, ws_frame(self.status()))  # a count and its framed status
        self._round_timer: asyncio.TimerHandle | None = None

    @contextlib.asynccontextmanager
    async def reachable(self, sid: str) -> AsyncIterator[None]:
        """While held, frames for `sid` reach the sockets connected here
        (one balancer: always; replicas.hub: once subscribed to them)."""
        yield

    def connect(
        self, sid: str, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None,
        tenant: str | None, sees_all: bool,
    ) -> ClientSocket:  # fmt: skip
        sock = ClientSocket(sid, ws, transport, tenant, sees_all)
        self._by_sid.setdefault(sid, {})[sock] = None
        self._all[sock] = None
        self._restricted += not sees_all
        return sock

    def remove(self, sock: ClientSocket) -> None:
        if sock not in self._all:
            return
        del self._all[sock]
        self._restricted -= not sock.sees_all
        group = self._by_sid.get(sock.sid)
        if group is not None:
            group.pop(sock, None)
            if not group:
                del self._by_sid[sock.sid]

    def __len__(self) -> int:
        return len(self._all)

    def of(self, sid: str | None) -> list[ClientSocket]:
        return list(self._by_sid.get(sid, ())) if sid is not None else []

    def sees(self, sid: str, owner: str | None) -> bool:
        """Whether a socket of `sid` here may see a job of tenant `owner`."""
        return any(s.may_see(owner) for s in self._by_sid.get(sid, ()))

    def send(self, sock: ClientSocket, frame: Frame) -> None:
        self._push(sock, ws_frame(frame))

    def _push(self, sock: ClientSocket, data: bytes) -> None:
        if sock.push(data):
            self._dirty.append(sock)
            self._schedule()

    def _push_all(self, socks: Iterable[ClientSocket], data: bytes) -> None:
        dirty = self._dirty
        for sock in socks:
            if sock.push(data):
                dirty.append(sock)
        self._schedule()

    def _schedule(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _write_now(self, socks: Iterable[ClientSocket], data: bytes) -> None:
        """A frame for a few sockets (a job's client): each writes it in this
        loop turn, after what it had buffered, ahead of the turn's flush."""
        for sock in socks:
            sock.push(data)
            sock.flush()

    def to_owner(self, sid: str | None, owner: str | None, frame: Frame) -> None:
        """To the sockets of `sid` that may see a job of tenant `owner`, at once."""
        group = self._by_sid.get(sid, ()) if sid is not None else ()
        visible = [s for s in group if s.may_see(owner)]
        if visible:
            self._write_now(visible, ws_frame(frame))

    def broadcast_owned(self, owner: str | None, frame: Frame) -> None:
        """A job's broadcast event: to every socket that may see its tenant."""
        if not self._all:
            return
        data = ws_frame(frame)
        if self._restricted:
            self._push_all((s for s in self._all if s.may_see(owner)), data)
        else:
            self._push_all(self._all, data)

    def to_previewers(self, sid: str, owner: str | None, frame: Frame, metadata: bool) -> None:
        """A preview for the sockets of `sid` that may see a job of tenant
        `owner` and asked for preview metadata (`metadata`), or did not; at once."""
        visible = [s for s in self._by_sid.get(sid, ()) if s.may_see(owner)]
        wanted = [s for s in visible if s.wants_metadata == metadata]
        if wanted:
            self._write_now(wanted, ws_frame(frame))

    def broadcast_here(self, frame: Frame) -> None:
        """What a backend broadcast to every socket (a prompt the balancer
        did not send): every replica's channel got it, so it goes to the
        sockets of this one only."""
        ClientHub.broadcast_owned(self, None, frame)

    def status(self, sid: str | None = None) -> str:
        data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": self.queue_remaining}}}
        if sid is not None:
            data["sid"] = sid
        return event("status", data)

    def set_queue_remaining(self, count: int) -> None:
        """Tell every socket the pool-wide queue count when it changes (paced
        and sliced, see the module's docstring)."""
        self.queue_remaining = count
        self._next_round()

    def _next_round(self) -> None:
        if self._round or self._round_timer is not None:
            return  # the round under way, or the one waiting, sees this count
        if self.queue_remaining == self._status_sent:
            return
        wait = self._round_at + self.status_every - self.now()
        if wait > 0:
            loop = asyncio.get_running_loop()
            self._round_timer = loop.call_later(wait, self._round_due)
        else:
            self._start_round()

    def _round_due(self) -> None:
        self._round_timer = None
        if self.queue_remaining != self._status_sent:
            self._start_round()

    def _start_round(self) -> None:
        self._round_at = self.now()
        self._status_sent = self.queue_remaining
        self._round_first = True
        self._round = list(self._all)
        self._round.reverse()  # taken from the end: connection order
        self._schedule()

    def _flush(self) -> None:
        self._flush_due = False
        if self._round:
            self._status_slice()
        dirty, self._dirty = self._dirty, []
        for sock in dirty:
            sock.flush()
        if self._round:
            self._schedule()
        else:
            self._next_round()  # the count may have changed while a round ran

    def _status_slice(self) -> None:
        """The status with the count of now for the next `STATUS_SLICE`
        sockets of the round, after the events this turn writes to them."""
        count = self.queue_remaining
        if self._round_first:
            self._round_first, self._status_sent = False, count
        elif count != self._status_sent:
            self._status_sent = None  # the round's first sockets got another count
        if self._count_frame[0] != count:
            self._count_frame = (count, ws_frame(self.status()))
        data = self._count_frame[1]
        for sock in self._round[-STATUS_SLICE:]:
            sock.push(data)
            sock.flush()
        del self._round[-STATUS_SLICE:]

    async def close_all(self, code: int, message: bytes) -> None:
        self._flush()
        if self._round_timer is not None:
            self._round_timer.cancel()
        for sock in list(self._all):
            with contextlib.suppress(Exception):
                await sock.ws.close(code=code, message=message)
