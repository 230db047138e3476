"""The webhook sender's own HTTP session, and its stop: deliveries in flight
get up to the shutdown timeout."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

from balancer.webhooks.sender import Webhooks

WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks", Webhooks)


def webhook_session() -> aiohttp.ClientSession:
    """Separate from the backends' session: it keeps no cookies either, but
    decodes bodies and sends the usual headers to a client's receiver."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


async def drain_webhooks(hooks: Webhooks, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hooks.drain(), timeout)
