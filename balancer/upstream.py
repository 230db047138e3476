"""Small JSON calls to backends (probes, aggregation, fan-out).

Streaming pass-through lives in `balancer.proxy.forward`; this module is for
answers the balancer reads itself. It asks for `identity` encoding so a
backend started with `--enable-compress-response-body` still gives plain JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp

from balancer.http1.answer import BadAnswer
from balancer.http1.posts import CannotConnect, Disconnected, KeptPosts, Target, target_of

JSON_HEADERS = {"Accept-Encoding": "identity", "Accept": "application/json"}
POST_HEADERS = {**JSON_HEADERS, "Content-Type": "application/json"}
MAX_TARGETS = 4096  # POST URLs remembered (one or a few per backend)

# How long one call to `url` may take, as a context around the call; leaving
# it by timeout raises TimeoutError. The wall clock in production; tests
# inject their own, so a test (not the machine's load) decides which calls
# time out.
Deadline = Callable[[str, float], AbstractAsyncContextManager[object]]


def wall_deadline(url: str, seconds: float) -> asyncio.Timeout:
    """The call to `url` may take `seconds` of wall-clock time."""
    return asyncio.timeout(seconds)


class UpstreamError(Exception):
    """A backend could not be reached, timed out, or answered garbage."""


class UpstreamConnectError(UpstreamError):
    """The connection was never made, so the backend saw nothing."""


class UpstreamTimeout(UpstreamError):
    """The backend took the request and did not answer in time: unresponsive,
    which is not dead (a refused or reset connection is)."""


class UpstreamReset(UpstreamError):
    """The connection was reset or closed under the request."""


def is_death(exc: UpstreamError) -> bool:
    """A refused or reset connection means the backend process is gone; a
    timeout or a bad answer means it is unresponsive, which may pass."""
    return isinstance(exc, UpstreamConnectError | UpstreamReset)


@dataclass(frozen=True)
class UpstreamReply:
    status: int
    body: bytes
    content_type: str = "application/json"

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError as exc:
            raise UpstreamError(f"invalid JSON from backend: {exc}") from exc


def connect_failure(error: OSError, host: str, port: int | None) -> str:
    """What an operator needs from a failed connect: `Connection refused
    (127.0.0.1:8189)`, `Name or service not known (gpu0:8188)`."""
    code = error.errno
    reason = os.strerror(code) if isinstance(code, int) and code > 0 else error.strerror
    return f"{reason or type(error).__name__} ({host}:{port})"


class Upstream:
    """JSON requests to backends through one shared session.

    A call's `timeout` covers all of it, connecting included; with
    `from_send` (probes) it runs from when the request is sent, so a probe
    that waited for its connection on a busy balancer (1,000 first probes at
    start-up) is not timed out for that wait: it may take `connect` seconds
    to connect and send, then `timeout` seconds until each part of the
    answer (aiohttp's read timeout). That needs the wall clock; an injected
    deadline (tests) bounds the whole call alone.

    POSTs to plain `http://` backends go over `posts`, when given: kept
    connections of the balancer's own (`balancer.http1`), the same errors.
    A prompt's send is on the path from a client's POST to its job's start,
    and aiohttp's client took about as much of the balancer's CPU per send
    as all of the rest of its dispatch (README, `bench ws`).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request_timeout: float,
        connect_timeout: float,
        deadline: Deadline = wall_deadline,
        posts: KeptPosts | None = None,
    ) -> None:
        self.session = session
        self.posts = posts
        self._targets: dict[str, Target | None] = {}  # POST URL -> where it goes on `posts`
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        # Moves when a request that may change a backend starts and when it
        # ends, so an answer read around it is known to be stale.
        self.writes = 0
        self.deadline = deadline

    async def call(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        timeout: float | None = None,
        from_send: bool = False,
    ) -> UpstreamReply:
        if method in ("GET", "HEAD"):
            return await self._call(method, url, body, timeout, from_send)
        self.writes += 1
        try:
            return await self._call(method, url, body, timeout, from_send)
        finally:
            self.writes += 1

    async def _call(
        self, method: str, url: str, body: bytes | None, timeout: float | None, from_send: bool
    ) -> UpstreamReply:
        if method == "POST" and body is not None and self.posts is not None:
            target = self._target(url)
            if target is not None:
                return await self._post(self.posts, url, target, body, timeout)
        headers = dict(JSON_HEADERS)
        if body is not None:
            headers["Content-Type"] = "application/json"
        seconds = timeout or self.request_timeout
        read = self.session.timeout
        if from_send and self.deadline is wall_deadline:
            connect = self.connect_timeout
            read = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=seconds)
            seconds += connect
        try:
            async with (
                self.deadline(url, seconds),
                self.session.request(method, url, data=body, headers=headers, timeout=read) as resp,
            ):
                return UpstreamReply(resp.status, await resp.read(), resp.content_type)
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamConnectError(connect_failure(exc.os_error, exc.host, exc.port)) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{type(exc).__name__}: {exc}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise UpstreamReset(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc

    def _target(self, url: str) -> Target | None:
        if url not in self._targets:
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            self._targets[url] = target_of(url, POST_HEADERS)
        return self._targets[url]

    async def _post(
        self, posts: KeptPosts, url: str, target: Target, body: bytes, timeout: float | None
    ) -> UpstreamReply:
        try:
            async with self.deadline(url, timeout or self.request_timeout):
                answer = await posts.post(target, body)
        except CannotConnect as exc:
            raise UpstreamConnectError(connect_failure(exc.error, exc.host, exc.port)) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{type(exc).__name__}: {exc}") from exc
        except Disconnected as exc:
            raise UpstreamReset(f"connection lost: {exc}") from exc
        except BadAnswer as exc:
            raise UpstreamError(f"bad answer: {exc}") from exc
        return UpstreamReply(answer.status, answer.body, answer.content_type)

    async def get_json(
        self, url: str, *, timeout: float | None = None, from_send: bool = False
    ) -> Any:
        reply = await self.call("GET", url, timeout=timeout, from_send=from_send)
        if reply.status != 200:
            raise UpstreamError(f"HTTP {reply.status} from {url}")
        return reply.json()
