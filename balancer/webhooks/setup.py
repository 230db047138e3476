"""The webhook sender's own HTTP session, and its stop: deliveries in flight
get what is left of the shutdown's one deadline (`balancer.shutdown`)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from balancer.shutdown import ShutdownDeadline
from balancer.webhooks.sender import Webhooks

WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks", Webhooks)


def webhook_session() -> aiohttp.ClientSession:
    """Separate from the backends' session: it keeps no cookies either, but
    decodes bodies and sends the usual headers to a client's receiver."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


async def drain_webhooks(hooks: Webhooks, deadline: ShutdownDeadline) -> None:
    """Deliveries in flight finish until the deadline; the ones left then
    are cut, each named in a log line (`Webhooks.deliver`), and stay owed
    in a durable outbox."""
    await deadline.within("webhooks", hooks.drain())
    await hooks.close()
