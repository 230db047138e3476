"""Streaming pass-through of one request to one backend.

Bodies stream both ways in chunks, so a 50 MB `/view` is never held in
memory: an answer of known length is relayed from socket to socket in
reused buffers (relay.py), a chunked one through aiohttp's reader (waiting
unread up to twice `READ_BUFFER`, resources.py); small answers (with a
Content-Length under one chunk) are read whole, which is cheaper than a
streamed response. Range and conditional headers pass
through untouched, and so does Content-Encoding (the session does not decode).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from yarl import URL

from balancer.backends.state import Backend, Clock
from balancer.errors import error_response, too_large
from balancer.logs import get_logger
from balancer.proxy.headers import client_response_headers, upstream_request_headers
from balancer.proxy.relay import Ending, relay_body, relayable

log = get_logger("balancer.proxy")

# A request body is read in chunks of up to this size; an answer with a
# Content-Length up to it is read whole (cheaper than a streamed response).
CHUNK = 512 * 1024


class BodyTooLarge(Exception):
    pass


async def _limited(stream: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream.iter_chunked(CHUNK):
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge
        yield chunk


def bad_gateway(detail: str) -> web.Response:
    return error_response(502, "bad_gateway", "Backend failed", detail)


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, max_body: int, clock: Clock) -> None:
        self.session = session
        self.max_body = max_body
        self.clock = clock

    async def forward(
        self, request: web.Request, backend: Backend, path_qs: str | None = None
    ) -> web.StreamResponse:
        """Send `request` to the backend (same method, path, query, body) and
        relay its answer. `path_qs` replaces the raw path and query if given.
        An answer arriving is a sign of the backend's life (see the prober)."""
        if request.content_length is not None and request.content_length > self.max_body:
            return too_large(self.max_body)
        base = URL(backend.url)
        target = URL(backend.url + (path_qs or request.raw_path), encoded=True)
        data = _limited(request.content, self.max_body) if request.body_exists else None
        try:
            async with self.session.request(
                request.method,
                target,
                headers=upstream_request_headers(request, base),
                data=data,
                allow_redirects=False,
            ) as upstream:
                backend.saw_life(self.clock())
                return await self._relay(request, upstream)
        except BodyTooLarge:
            return too_large(self.max_body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("proxy_error", path=request.path, error=type(exc).__name__)
            return bad_gateway(f"{type(exc).__name__}: {exc}")

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        headers = client_response_headers(upstream.headers)
        length = upstream.content_length
        if request.method == "HEAD" or (length is not None and length <= CHUNK):
            body = await upstream.read()
            headers.pop("Content-Length", None)
            response = web.Response(
                status=upstream.status, reason=upstream.reason, body=body, headers=headers
            )
            if request.method == "HEAD" and length is not None:
                response.headers["Content-Length"] = str(length)
            return response
        stream = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        stream.headers.extend(headers)
        await stream.prepare(request)
        try:
            if relayable(request, upstream):  # a known length: relay.py, no per-piece await
                timeout = self.session.timeout.sock_read
                if await relay_body(request, stream, upstream, timeout) is Ending.CLIENT_GONE:
                    log.info("proxy_client_gone", path=request.path, phase="body")
                    return stream
            else:
                # Each piece as the socket delivered it: iter_chunked would
                # join pieces into a new bytes, a copy of every byte.
                async for piece, _ in upstream.content.iter_chunks():
                    if piece:
                        await stream.write(piece)
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Headers are gone already: all we can do is cut the body short.
            log.warning("proxy_error", path=request.path, error=type(exc).__name__, phase="body")
            if request.transport is not None:
                request.transport.close()
            return stream
        await stream.write_eof()
        return stream
