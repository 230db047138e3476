"""Client sockets: who is connected under which sid, and sending to them.

A broadcast's bytes are appended to each socket's buffer (ws_socket.py), and
one callback per loop turn writes every socket's buffer to its transport in
one write. A job's own frame, for its client's sockets only, is written at
once, with what each of them had buffered before it: it never waits for
that callback, nor behind a broadcast or a status round to every socket.
Frames reach a socket in the order they were sent to it. The pool-wide
`status` rounds (ws_status.py) are written by the same callback.

Several sockets may share a sid (a reconnect that overlaps the old socket):
each gets the events, unlike ComfyUI, where the late close of the old one
mutes the new. Access checks are skipped while no connected socket is
restricted to a tenant (no API keys, or only admin keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable

from aiohttp import web

from balancer.proxy.ws_socket import ClientSocket, Frame, ws_frame
from balancer.proxy.ws_status import STATUS_EVERY, StatusRounds, status_event


class ClientHub:
    def __init__(
        self, status_every: float = STATUS_EVERY, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._by_sid: dict[str, dict[ClientSocket, None]] = {}
        self._all: dict[ClientSocket, None] = {}  # every socket, in connection order
        self._restricted = 0  # sockets that see only one tenant's jobs
        self._dirty: list[ClientSocket] = []
        self._flush_due = False
        self._rounds = StatusRounds(self._all, self._schedule, status_every, now)

    @contextlib.asynccontextmanager
    async def reachable(self, sid: str) -> AsyncIterator[None]:
        """While held, frames for `sid` reach the sockets connected here
        (one balancer: always; replicas.hub: once subscribed to them)."""
        yield

    def connect(
        self, sid: str, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None,
        tenant: str | None, sees_all: bool,
    ) -> ClientSocket:  # fmt: skip
        # Its first message carries the count of now (`greet`).
        sock = ClientSocket(sid, ws, transport, tenant, sees_all, self.queue_remaining)
        self._by_sid.setdefault(sid, {})[sock] = None
        self._all[sock] = None
        self._rounds.joined(sock)
        self._restricted += not sees_all
        return sock

    def remove(self, sock: ClientSocket) -> None:
        if sock not in self._all:
            return
        del self._all[sock]
        self._rounds.left(sock)
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

    def greet(self, sock: ClientSocket) -> None:
        """A new socket's first message: `status` with its sid and the count."""
        self.send(sock, status_event(self.queue_remaining, sock.sid))
        self._rounds.sent(sock, self.queue_remaining)

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

    def _visible(self, sid: str | None, owner: str | None) -> list[ClientSocket]:
        group = self._by_sid.get(sid, ()) if sid is not None else ()
        return [s for s in group if s.may_see(owner)]

    def to_owner(self, sid: str | None, owner: str | None, frame: Frame) -> None:
        """To the sockets of `sid` that may see a job of tenant `owner`, at once."""
        visible = self._visible(sid, owner)
        if visible:
            self._write_now(visible, ws_frame(frame))

    def count_to_owner(self, sid: str, owner: str | None) -> None:
        """The pool-wide count, as `to_owner` sends a job's event."""
        self.to_owner(sid, owner, self.status())
        for sock in self._visible(sid, owner):
            self._rounds.sent(sock, self.queue_remaining)

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
        wanted = [s for s in self._visible(sid, owner) if s.wants_metadata == metadata]
        if wanted:
            self._write_now(wanted, ws_frame(frame))

    def broadcast_here(self, frame: Frame) -> None:
        """What a backend broadcast to every socket (a prompt the balancer
        did not send): every replica's channel got it, so it goes to the
        sockets of this one only."""
        ClientHub.broadcast_owned(self, None, frame)

    @property
    def queue_remaining(self) -> int:
        return self._rounds.count

    def status(self) -> str:
        return status_event(self.queue_remaining)

    def set_queue_remaining(self, count: int) -> None:
        """Tell every socket the pool-wide queue count when it changes (paced
        and sliced, see ws_status.py)."""
        self._rounds.set(count)

    def _flush(self) -> None:
        self._flush_due = False
        rounds = self._rounds
        if rounds.under_way:
            rounds.write_slice()
        dirty, self._dirty = self._dirty, []
        for sock in dirty:
            sock.flush()
        if rounds.under_way:
            self._schedule()
        else:
            rounds.next_round()  # the count may have changed while a round ran

    async def close_all(self, code: int, message: bytes) -> None:
        self._flush()
        self._rounds.stop()
        for sock in list(self._all):
            with contextlib.suppress(Exception):
                await sock.ws.close(code=code, message=message)
