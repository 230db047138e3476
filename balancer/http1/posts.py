"""Small POSTs to backends over kept HTTP/1.1 connections, without aiohttp's
client. A prompt's send lies between a client's POST and its job's start;
see `balancer.upstream` for why it takes this path and what it maps the
errors here to.

One request at a time per connection. A connection is kept for the next
request only when its answer was read whole and the server keeps it open;
it is dropped once the server closes it or it was idle `idle_timeout`
seconds. A request is never sent again on its own: a connection lost under
it is Disconnected (the backend may have taken it), as with aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from yarl import URL

from balancer.http1.answer import AnswerReader, BadAnswer

PER_HOST = 256  # requests in flight to one backend at once (the aiohttp connector's limit)
MAX_IDLE = 16  # idle connections kept per backend


class Disconnected(Exception):
    """The connection ended, or was reset, before the whole answer came."""


class CannotConnect(Exception):
    """No connection could be made: the backend saw nothing."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(f"{error} ({host}:{port})")
        self.host, self.port, self.error = host, port, error


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    head: bytes  # the request line and headers, up to Content-Length


def target_of(url: str, headers: Mapping[str, str]) -> Target | None:
    """Where a POST to `url` goes, with its request head; None for a URL
    this client does not take (not plain http, or credentials in it)."""
    parsed = URL(url)
    if parsed.scheme != "http" or parsed.raw_user or parsed.raw_password or not parsed.host:
        return None
    lines = [f"POST {parsed.raw_path_qs} HTTP/1.1", f"Host: {parsed.raw_authority}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    return Target(parsed.host, parsed.port or 80, head)


class Connection(asyncio.Protocol):
    """One kept connection; `exchange` sends a request and reads its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.open = True
        self.idle_since = 0.0
        self._reader: AnswerReader | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._reader is None:  # nothing was asked: never trusted again
            self.close()
            return
        try:
            self._reader.feed(data)
        except BadAnswer as exc:
            self._fail(exc)
            return
        if self._reader.done:
            self._wake()

    def eof_received(self) -> bool:
        self.open = False
        if self._reader is not None:
            try:
                self._reader.end()
            except BadAnswer:
                self._fail(Disconnected("the backend closed the connection before answering"))
                return False
            self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        why = f"{type(exc).__name__}: {exc}" if exc else "the connection was closed"
        self._fail(Disconnected(why))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return self.open and self.transport is not None and not self.transport.is_closing()

    async def exchange(self, request: bytes) -> AnswerReader:
        assert self.transport is not None and self._waiter is None
        reader = self._reader = AnswerReader()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            self.transport.write(request)
            await self._waiter
        finally:
            self._waiter = None
            self._reader = None
        return reader


class KeptPosts:
    """The kept connections to every backend, and the POSTs over them."""

    def __init__(
        self,
        connect_timeout: float,
        idle_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._closed = False

    async def post(self, target: Target, body: bytes) -> Answer:
        """The whole answer. CannotConnect, Disconnected, BadAnswer, or
        TimeoutError (connecting took `connect_timeout`)."""
        key = (target.host, target.port)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(PER_HOST)
        request = target.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        async with slots:
            connection = self._take(key) or await self._connect(target)
            kept = False
            try:
                reader = await connection.exchange(request)
                kept = reader.reusable and connection.usable
            finally:
                if kept:
                    connection.idle_since = self.clock()
                    self._keep(key, connection)
                else:
                    connection.close()
        assert reader.head is not None
        return Answer(reader.head.status, bytes(reader.body), reader.head.content_type)

    def _take(self, key: tuple[str, int]) -> Connection | None:
        """The most recently used idle connection still open; those idle too long are closed."""
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest = self.clock() - self.idle_timeout
        while idle and idle[0].idle_since < oldest:
            idle.pop(0).close()
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    def _keep(self, key: tuple[str, int], connection: Connection) -> None:
        if self._closed:
            connection.close()
            return
        idle = self._idle.setdefault(key, [])
        idle.append(connection)
        if len(idle) > MAX_IDLE:
            idle.pop(0).close()

    async def _connect(self, target: Target) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(Connection, target.host, target.port)
        except OSError as exc:
            raise CannotConnect(target.host, target.port, exc) from exc
        return connection

    def close(self) -> None:
        """Every idle connection, and each in use once its answer is read (at shutdown)."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
