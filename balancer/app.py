"""Builds the balancer's aiohttp application from settings.

Time, the HTTP session and prompt_id minting are injectable so tests are
deterministic; the prober loop can be left off and driven by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from balancer.backends.prober import Prober
from balancer.backends.registry import Registry
from balancer.backends.state import Clock
from balancer.config.model import Settings
from balancer.errors import error_response
from balancer.jobs.ids import IdFactory, mint_prompt_id
from balancer.jobs.submit import Submitter
from balancer.logs import get_logger
from balancer.proxy.context import BALANCER, Balancer
from balancer.proxy.forward import Forwarder, too_large
from balancer.proxy.routes import setup_routes
from balancer.scheduling import Picker
from balancer.store import MemoryStore, Store
from balancer.upstream import Upstream

log = get_logger("balancer.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def make_session(settings: Settings) -> aiohttp.ClientSession:
    """One pooled session for all backends. It keeps no cookies (they would
    leak between clients), does not decode bodies (Content-Encoding passes
    through) and adds no Accept-Encoding the client did not send."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.timeouts.connect, sock_read=settings.timeouts.request
    )
    return aiohttp.ClientSession(
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=256),
    )


def error_middleware(
    max_body: int,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return too_large(max_body)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled_error", method=request.method, path=request.path)
            return error_response(500, "internal_error", "Internal balancer error")

    return middleware


def create_app(
    settings: Settings,
    *,
    clock: Clock = time.monotonic,
    new_id: IdFactory = mint_prompt_id,
    run_prober: bool = True,
    session: aiohttp.ClientSession | None = None,
    store: Store | None = None,
) -> web.Application:
    max_body = settings.limits.max_body
    middlewares: list[Any] = [error_middleware(max_body)]
    app = web.Application(client_max_size=max_body, middlewares=middlewares)
    registry = Registry(settings.backends)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        http = session or make_session(settings)
        upstream = Upstream(http, settings.timeouts.request)
        prober = Prober(registry, upstream, settings.probe, clock)
        pins = store or MemoryStore()
        submitter = Submitter(registry, Picker(), pins, upstream, settings.probe, clock, new_id)
        app[BALANCER] = Balancer(
            settings=settings,
            registry=registry,
            prober=prober,
            upstream=upstream,
            forwarder=Forwarder(http, max_body),
            submitter=submitter,
            store=pins,
            clock=clock,
        )
        task = asyncio.create_task(prober.run()) if run_prober else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if session is None:
            await http.close()

    app.cleanup_ctx.append(lifecycle)
    setup_routes(app)
    return app
