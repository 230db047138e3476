"""Injectable faults (slow, hanging, failing, dropped answers) and their
middleware; and the request count by path."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

CONTROL_PREFIX = "/_emulator"
INTERNAL_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Faults:
    """Mutable fault switches; every ComfyUI route honours them, /_emulator/* does not."""

    FIELDS = ("http_delay", "hang", "http_status", "drop_connections")

    def __init__(self) -> None:
        self.http_delay: float = 0.0
        self.http_status: int | None = None
        self.drop_connections: bool = False
        self.held: list[str] = []  # the paths of the requests a hang holds now
        self._released = asyncio.Event()
        self._released.set()

    @property
    def hang(self) -> bool:
        return not self._released.is_set()

    @hang.setter
    def hang(self, value: bool) -> None:
        if value:
            self._released.clear()
        else:
            self._released.set()

    async def wait_released(self, path: str) -> None:
        """Hold a request for `path` until the hang is lifted (listed in `held` meanwhile)."""
        self.held.append(path)
        try:
            await self._released.wait()
        finally:
            self.held.remove(path)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def update(self, values: dict[str, Any]) -> None:
        """Set the given fields; raises ValueError for unknown names or bad types."""
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if "http_delay" in values:
            self.http_delay = float(values["http_delay"])
        if "http_status" in values:
            status = values["http_status"]
            self.http_status = None if status is None else int(status)
        if "drop_connections" in values:
            self.drop_connections = bool(values["drop_connections"])
        if "hang" in values:
            self.hang = bool(values["hang"])

    def reset(self) -> None:
        self.update({"http_delay": 0.0, "http_status": None, "drop_connections": False})
        self.hang = False


def status_response(status: int) -> web.Response:
    """The plain-text body aiohttp (and so ComfyUI) gives for an error status."""
    if status == 500:
        return web.Response(status=500, text=INTERNAL_ERROR_TEXT)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return web.Response(status=status, text=f"{status}: {reason}")


def faults_middleware(faults: Faults) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        if faults.hang:
            await faults.wait_released(request.path)
        if faults.http_delay > 0:
            await asyncio.sleep(faults.http_delay)
        if faults.drop_connections:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing can be written on an aborted transport
        if faults.http_status is not None:
            return status_response(faults.http_status)
        return await handler(request)

    return middleware


def counting_middleware(counts: Counter[str]) -> Middleware:
    """Count each request to ComfyUI's routes by path (control routes aside)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(CONTROL_PREFIX):
            counts[request.path] += 1
        return await handler(request)

    return middleware


def slow_middleware(paths: frozenset[str], cost: float) -> Middleware:
    """GETs of `paths` (bare or under /api) hold the event loop `cost`
    seconds, as GET /object_info does (`object_info_cost`)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path.removeprefix("/api") in paths:
            time.sleep(cost)  # the loop held, as ComfyUI's
        return await handler(request)

    return middleware
