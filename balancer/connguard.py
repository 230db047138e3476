"""Connection limits in front of aiohttp: a deadline for a connection's
first request headers, and a cap on the connections one peer holds open.

A host that opens thousands of connections and never finishes a request
(slowloris) would otherwise hold a file descriptor per connection until the
process runs out. Each accepted connection gets a thin protocol around
aiohttp's own: it counts the peer's open connections (beyond
`limits.max_connections_per_peer`: 503 and closed at once) and closes a
connection whose request headers are not complete `limits.header_timeout`
after it opened (408). Everyone else is served as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from balancer.logs import get_logger

log = get_logger("balancer.connections")

REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
LINGER = 2.0  # seconds a refused or cut client has to read its answer


def answer_and_close(transport: asyncio.Transport, answer: bytes) -> asyncio.TimerHandle:
    """Send `answer` and half-close; the connection closes when the client
    closes its side, or LINGER later. Closing at once, with bytes the client
    sent still unread, resets the connection: the client could lose the
    answer (its read fails with ECONNRESET)."""
    transport.write(answer)
    if transport.can_write_eof():
        transport.write_eof()
    return asyncio.get_running_loop().call_later(LINGER, transport.close)


# Calls `expire` once `seconds` have passed; the handle cancels it.
Timer = Callable[[float, Callable[[], None]], asyncio.TimerHandle]


def loop_timer(seconds: float, expire: Callable[[], None]) -> asyncio.TimerHandle:
    """The header deadline on the wall clock (the running loop's)."""
    return asyncio.get_running_loop().call_later(seconds, expire)


@dataclass
class ConnectionLimits:
    """Shared by every connection of one server: open connections per peer.
    `timer` starts each connection's header deadline (tests inject one that
    passes when they say so, not when a loaded machine is slow)."""

    header_timeout: float
    max_per_peer: int
    timer: Timer = loop_timer
    open: dict[str, int] = field(default_factory=dict)
    refusing: set[str] = field(default_factory=set)  # peers at the cap (logged once)

    def admit(self, peer: str) -> bool:
        count = self.open.get(peer, 0)
        if count >= self.max_per_peer:
            if peer not in self.refusing:
                self.refusing.add(peer)
                log.warning("connections_refused", peer=peer, open=count)
            return False
        self.open[peer] = count + 1
        return True

    def release(self, peer: str) -> None:
        self.refusing.discard(peer)
        left = self.open.get(peer, 1) - 1
        if left > 0:
            self.open[peer] = left
        else:
            self.open.pop(peer, None)


class QuietRequestHandler(RequestHandler):
    """aiohttp's handler, except that a request it cannot parse gets a bare
    400: aiohttp's own answer quotes the raw bytes back, `Authorization`
    header and all (it still logs them, redacted by `balancer.logs`)."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        quiet = isinstance(exc, HttpProcessingError)
        return super().handle_error(request, status, exc, None if quiet else message)


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the two limits."""

    def __init__(self, limits: ConnectionLimits, inner: asyncio.Protocol) -> None:
        self.limits = limits
        if type(inner) is RequestHandler:
            inner.__class__ = QuietRequestHandler  # same slots: only handle_error differs
        self.inner = inner
        self.peer: str | None = None
        self.transport: asyncio.Transport | None = None
        # The header deadline, then (once answered) the close after LINGER.
        self.deadline: asyncio.TimerHandle | None = None
        self.answered = False  # refused or cut: what the client sends is dropped
        self.tail = b""  # the last bytes seen while waiting for the end of the headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self.limits.admit(host):
            self.answered = True
            self.deadline = answer_and_close(transport, REFUSED)
            return
        self.peer, self.transport = host, transport
        self.deadline = self.limits.timer(self.limits.header_timeout, self._expire)
        self.inner.connection_made(transport)

    def _expire(self) -> None:
        self.deadline = None
        if self.transport is not None and not self.transport.is_closing():
            log.warning("header_timeout", peer=self.peer)
            self.answered = True
            self.deadline = answer_and_close(self.transport, TIMED_OUT)

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return
        if self.deadline is not None:
            seen = self.tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self.deadline.cancel()
                self.deadline = None
            self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.answered:
            return None  # the client closed after its answer: close too
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        if self.peer is None:
            return  # refused: aiohttp never saw it
        self.limits.release(self.peer)
        self.peer = None
        self.inner.connection_lost(exc)


class GuardedSite(web.SockSite):
    """aiohttp's SockSite with every connection behind `ConnectionLimits`."""

    def __init__(self, runner: web.BaseRunner, sock: object, limits: ConnectionLimits) -> None:
        super().__init__(runner, sock)  # type: ignore[arg-type]
        self.limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        factory: Callable[[], asyncio.Protocol] = server
        limits = self.limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedProtocol(limits, factory()), sock=self._sock, backlog=self._backlog
        )
