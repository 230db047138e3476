"""The client hub of one of several replicas: a frame for a client goes to
its sockets here and, through the event bus, to its sockets on the other
replicas; the others' frames are delivered to the sockets here.

A socket that opens first gets what its client missed while it had no
socket anywhere (journal.py): until that replay is written, this replica's
own frames for it wait behind it. Another replica's frames for a client
(those of one message: one batch of its) are written here in the order the
bus got them (after the replays queued before), and only then recorded as
handed in Redis (one mark, the last one written): one that no socket here
may see, or that came after its sockets here closed, is left for a later
socket's replay, on any replica. Each socket keeps the last entry it was
written, so a frame both replayed and received is written once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from functools import partial
from typing import Any

from aiohttp import web

from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_socket import ClientSocket, Frame, ws_frame
from balancer.replicas.bus import After, Delivery, EventBus, unpack
from balancer.replicas.journal import entry_key
from balancer.tasks import settle, stop

Entry = tuple[int, int]


class SharedHub(ClientHub):
    def __init__(self, bus: EventBus) -> None:
        super().__init__()
        self.bus = bus
        self._leaving: set[asyncio.Task[None]] = set()
        self._held: dict[ClientSocket, list[bytes]] = {}  # replay not written yet: what follows it
        self._seen: dict[ClientSocket, Entry] = {}  # the last kept entry written to each socket

    @contextlib.asynccontextmanager
    async def reachable(self, sid: str) -> AsyncIterator[None]:
        """Subscribed to `sid`'s frames from every replica, before its
        socket's handshake is answered (bus.py), until it closed."""
        try:
            await self.bus.joined(sid)
            yield
        finally:
            self._track(self.bus.left(sid))

    def _track(self, change: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(change)
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def settled(self) -> None:
        """Wait until every socket closed so far is unsubscribed."""
        await settle(self._leaving)

    def connect(
        self, sid: str, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None,
        tenant: str | None, sees_all: bool,
    ) -> ClientSocket:  # fmt: skip
        sock = super().connect(sid, ws, transport, tenant, sees_all)
        self._held[sock] = []
        self.bus.write(self.bus.journal.replay(sid, partial(self._replayed, sock)))
        return sock

    def remove(self, sock: ClientSocket) -> None:
        super().remove(sock)
        self._held.pop(sock, None)
        self._seen.pop(sock, None)

    def _replayed(self, sock: ClientSocket, entries: list[tuple[str, bytes]]) -> None:
        """What `sock`'s client missed, then what waited behind it; once
        written, recorded as handed (closed meanwhile: left for the next)."""
        held = self._held.pop(sock, None)
        if held is None:
            return
        written = None
        for entry, message in entries:
            found = unpack(message)
            if found is not None and sock.may_see(found[1].owner):
                self._push_kept([sock], entry_key(entry), ws_frame(found[1].frame))
                written = entry
        for data in held:
            sock.push(data)
        sock.flush()
        if written is not None:
            self.bus.write(self.bus.journal.see(sock.sid, written))

    def _push_kept(self, socks: Iterable[ClientSocket], entry: Entry, data: bytes) -> None:
        """Queue a kept frame on those of `socks` that were not written it yet."""
        seen = self._seen
        for sock in socks:
            if entry > seen.get(sock, (-1, -1)):
                seen[sock] = entry
                sock.push(data)

    def _write_now(self, socks: Iterable[ClientSocket], data: bytes) -> None:
        """This replica's frames (and unkept ones): after a socket's replay."""
        if self._held:
            now = []
            for sock in socks:
                waiting = self._held.get(sock)
                if waiting is None:
                    now.append(sock)
                else:
                    waiting.append(data)
            socks = now
        super()._write_now(socks, data)

    def to_owner(self, sid: str | None, owner: str | None, frame: Frame) -> None:
        super().to_owner(sid, owner, frame)
        if sid is not None:
            self.bus.publish(Delivery(sid, owner, frame), handed=self._written(sid, owner))

    def _written(self, sid: str, owner: str | None) -> bool:
        """Whether a socket of `sid` here was written a frame of `owner`'s
        just now (one whose replay is still out holds it: not yet)."""
        return any(s.may_see(owner) and s not in self._held for s in self.of(sid))

    def to_previewers(self, sid: str, owner: str | None, frame: Frame, metadata: bool) -> None:
        super().to_previewers(sid, owner, frame, metadata)
        self.bus.publish(Delivery(sid, owner, frame, metadata))

    def broadcast_owned(self, owner: str | None, frame: Frame) -> None:
        super().broadcast_owned(owner, frame)
        self.bus.publish(Delivery(None, owner, frame))

    def deliver(self, message: list[Delivery]) -> None:
        """Another replica's frames (one message's: all for one sid, or all
        broadcasts), for the sockets here only: a client's, after what the
        bus got before them (the kept ones recorded as handed)."""
        sid = message[0].sid
        if sid is None:
            for d in message:
                super().broadcast_owned(d.owner, d.frame)
            return
        mine = [d for d in message if self.sees(sid, d.owner)]  # the rest: for its next socket
        if mine:
            self.bus.write(After(partial(self._handed, sid, mine)))

    def _handed(self, sid: str, ds: list[Delivery]) -> None:
        """Frames for `sid`'s sockets here, in the bus's order: written, then
        the last kept one written recorded as handed. None of them is
        recorded before it was written, so a socket that closed first (or
        a reconnect elsewhere before the mark lands) loses none: the next
        socket's replay starts before them."""
        written = None
        for d in ds:
            if d.entry is None:
                self._deliver(d)
                continue
            # A socket whose replay is still out gets this one from it.
            socks = [s for s in self.of(sid) if s.may_see(d.owner) and s not in self._held]
            if socks:
                self._push_kept(socks, entry_key(d.entry), ws_frame(d.frame))
                written = d.entry
        for sock in self.of(sid):
            sock.flush()
        if written is not None:
            self.bus.write(self.bus.journal.see(sid, written))

    def _deliver(self, d: Delivery) -> None:
        sid = d.sid
        assert sid is not None
        if d.preview is not None:
            super().to_previewers(sid, d.owner, d.frame, d.preview)
        else:
            super().to_owner(sid, d.owner, d.frame)


async def run_shared(stack: contextlib.AsyncExitStack, hub: SharedHub) -> None:
    """Publish and receive frames while the app runs."""
    stack.push_async_callback(hub.bus.close)
    stack.push_async_callback(stop, asyncio.create_task(hub.bus.send_loop()))
    stack.push_async_callback(stop, asyncio.create_task(hub.bus.receive_loop(hub.deliver)))
