"""A recording wrapper for backends: an aiohttp middleware on every emulator
that sees each request a backend receives (WebSocket upgrades included)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from .auth_helpers import SECRETS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    method: str
    path_qs: str
    headers: tuple[tuple[str, str], ...]


@dataclass
class Recorder:
    seen: list[Seen] = field(default_factory=list)

    @property
    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            headers = tuple((k, v) for k, v in request.headers.items())
            self.seen.append(Seen(request.method, request.raw_path, headers))
            return await handler(request)

        return record

    def credentials(self) -> list[Seen]:
        """Requests that carried a key, a token or a credential header."""
        marks = [*SECRETS.values(), "token=", "comfyui_balancer_session"]
        names = {"authorization", "x-api-key", "proxy-authorization"}
        return [
            s
            for s in self.seen
            if any(m in s.path_qs or any(m in v for _, v in s.headers) for m in marks)
            or any(k.lower() in names for k, _ in s.headers)
        ]

    def paths(self) -> list[str]:
        return [s.path_qs for s in self.seen]
