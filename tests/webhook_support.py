"""A webhook receiver for tests: it records every delivery attempt (its
Idempotency-Key, body and whether it was taken) and can refuse the first ones."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer

from balancer.config.delivery_settings import WebhookSettings

SECRET = "hook-secret"
HOOKS = WebhookSettings(secret=SECRET, allow=("127.0.0.1",))


@dataclass
class Attempt:
    key: str | None
    body: bytes
    taken: bool


@dataclass
class Receiver:
    """`refuse`: how many attempts answer 500 before the receiver takes
    them; `hold`: the first attempt is answered only once it is set;
    `taken` is set once `expect` deliveries were taken."""

    refuse: int = 0
    hold: asyncio.Event | None = None
    expect: int = 1
    attempts: list[Attempt] = field(default_factory=list)
    tried: asyncio.Event = field(default_factory=asyncio.Event)
    taken: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/hook"))

    async def _hook(self, request: web.Request) -> web.Response:
        taken = len(self.attempts) >= self.refuse
        key = request.headers.get("Idempotency-Key")
        self.attempts.append(Attempt(key, await request.read(), taken))
        self.tried.set()
        if self.hold is not None and len(self.attempts) == 1:
            await self.hold.wait()
        if not taken:
            return web.Response(status=500)
        if len(self.accepted()) >= self.expect:
            self.taken.set()
        return web.Response(status=204)

    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.taken]

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
