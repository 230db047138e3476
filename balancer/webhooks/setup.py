"""Start and stop the webhook sender with the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from balancer.proxy.context import BALANCER
from balancer.webhooks.sender import Sleep, Webhooks

WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks", Webhooks)


def install_webhooks(app: web.Application, sleep: Sleep = asyncio.sleep) -> None:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        b = app[BALANCER]
        listen = b.settings.listen
        session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        hooks = Webhooks(
            lambda: b.settings.webhooks,
            b.store,
            session,
            f"http://{listen.host}:{listen.port}",
            sleep,
        )
        app[WEBHOOKS] = hooks
        b.events.subscribe(hooks)
        yield
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hooks.drain(), b.settings.shutdown.timeout)
        await session.close()

    app.cleanup_ctx.append(lifecycle)
