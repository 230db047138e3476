"""The body of a large backend answer, relayed without aiohttp's per-piece work.

Once aiohttp has read the head of an answer with a known length, the
backend connection's transport is handed to a `BodyRelay`: a buffered
protocol that reads into one buffer and writes each read to the client's
transport in the same callback (no StreamReader, no task switch, no new
bytes per piece). The connection is closed after the body, never pooled
again: aiohttp's parser still expects that body.

Flow control: reading from the backend pauses while the client's transport
holds anything unsent, until the client's writer drains it all (its
high-water mark is 0 meanwhile). A transport keeps a view of what it could
not send at once, so the buffer is read into again only once it is empty.
"""

from __future__ import annotations

import asyncio
import enum

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.base_protocol import BaseProtocol

# One read from the backend, at most: the memory a relay holds. 1 MiB took
# a quarter less CPU per GB than 256 KiB in `bench proxy` (README).
RELAY_BUFFER = 1024 * 1024


class Ending(enum.Enum):
    DONE = "done"  # the whole body reached the client's transport
    CLIENT_GONE = "client_gone"


class BodyRelay(asyncio.BufferedProtocol):
    """The backend transport's protocol for the rest of one body of
    `remaining` bytes; `run` waits for its end on the handler's task."""

    def __init__(self, source: asyncio.Transport, request: web.Request, remaining: int) -> None:
        assert request.transport is not None
        self.source = source
        self.sink = request.transport
        self.client: BaseProtocol = request.protocol  # paused: the sink holds bytes unsent
        self.remaining = remaining
        self.received = 0
        self.paused = False  # reading from the backend, until the sink is empty
        self.ended: Ending | BaseException | None = None
        self.buffer = bytearray(RELAY_BUFFER)
        self.waiter: asyncio.Future[None] | None = None

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.ended is not None:
            return
        if self.sink.is_closing():
            self._end(Ending.CLIENT_GONE)
            return
        n = min(nbytes, self.remaining)
        self.sink.write(memoryview(self.buffer)[:n])
        self.remaining -= n
        self.received += n
        if not self.remaining:
            self._end(Ending.DONE)
        elif self.client.writing_paused:
            self.source.pause_reading()
            self.paused = True
            self._wake()

    def eof_received(self) -> None:
        return None  # the transport closes; connection_lost tells

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended is None:
            why = f"backend connection lost with {self.remaining} bytes unsent: {exc!r}"
            self._end(aiohttp.ClientPayloadError(why))

    def _end(self, ending: Ending | BaseException) -> None:
        self.ended = ending
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def run(self, writer: AbstractStreamWriter, timeout: float | None) -> Ending:
        """Until the body's end, the client's leaving, or (raised) the
        backend's failing or sending nothing for `timeout` seconds."""
        seen = -1  # bytes received when the last wait began
        self.source.resume_reading()
        while self.ended is None:
            if self.paused:
                if not await self._drained(writer):
                    return Ending.CLIENT_GONE
                self.paused, seen = False, -1
                self.source.resume_reading()
            elif self.received == seen:
                raise aiohttp.SocketTimeoutError("Timeout on reading data from socket")
            else:
                seen = self.received
                await self._woken(timeout)
        if isinstance(self.ended, BaseException):
            raise self.ended
        return self.ended

    async def _drained(self, writer: AbstractStreamWriter) -> bool:
        """Wait for the client's transport to drain; whether it is still there."""
        try:
            await writer.drain()
        except ConnectionError:
            return False
        return not self.sink.is_closing()

    async def _woken(self, timeout: float | None) -> None:
        """Until the relay pauses or ends, or `timeout` passes."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.waiter
        except TimeoutError:
            pass  # the caller looks whether bytes came meanwhile
        finally:
            self.waiter = None


def relayable(request: web.Request, upstream: aiohttp.ClientResponse) -> bool:
    """Whether the rest of `upstream`'s body can be relayed by a BodyRelay:
    a length known to both sides (no chunks; the client's writer adds none),
    a body to come, both connections open."""
    length = upstream.content_length
    connection = upstream.connection
    return (
        length is not None
        and upstream.status in (200, 206)
        and "Transfer-Encoding" not in upstream.headers
        and request.writer.length == length
        and connection is not None
        and connection.transport is not None
        and request.transport is not None
        and not upstream.content.is_eof()
    )


async def relay_body(
    request: web.Request,
    stream: web.StreamResponse,
    upstream: aiohttp.ClientResponse,
    timeout: float | None,
) -> Ending:
    """Relay the rest of `upstream`'s body to the prepared `stream`
    (`relayable` said yes): what aiohttp has read already, then the rest
    through a BodyRelay. The backend connection is closed after it."""
    connection, length = upstream.connection, upstream.content_length
    assert connection is not None and length is not None
    handler, source, sink = connection.protocol, connection.transport, request.transport
    assert handler is not None and source is not None and sink is not None
    handler.pause_reading()  # aiohttp's protocol lets go: no more reads, no read timer
    low, high = sink.get_write_buffer_limits()
    sink.set_write_buffer_limits(high=0)  # drained means empty: the buffer is free
    try:
        head = upstream.content.read_nowait()  # all it read, nothing more comes
        relay = BodyRelay(source, request, length - len(head))
        source.set_protocol(relay)
        await stream.write(head)  # with the response's head, through aiohttp
        if relay.remaining <= 0:
            return Ending.DONE
        return await relay.run(request.writer, timeout)
    finally:
        upstream.close()
        if not sink.is_closing():
            sink.set_write_buffer_limits(high=high, low=low)
