"""Builds the balancer's aiohttp application from settings.

Time, the HTTP session and prompt_id minting are injectable so tests are
deterministic; the prober loop can be left off and driven by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import WSCloseCode, web
from redis.asyncio import Redis

from balancer.auth.access import ACCESS
from balancer.auth.setup import setup_cors
from balancer.auth.signin import add_sign_in_routes
from balancer.backends.registry import Registry
from balancer.backends.state import Clock
from balancer.catalog.book import Catalogues
from balancer.compose import Injected, Parts, assemble
from balancer.config.settings import Settings
from balancer.jobs.ids import IdFactory, mint_prompt_id
from balancer.jobs.waiting import SharedWaiting
from balancer.logs import get_logger
from balancer.middleware import request_middleware
from balancer.ops.admin import add_admin_routes
from balancer.ops.context import OPS
from balancer.ops.metrics import Metrics
from balancer.ops.routes import add_status_routes
from balancer.ops.setup import watching_config
from balancer.outputs.setup import OUTPUTS
from balancer.outputs.sink import OutputSink
from balancer.proxy.context import BALANCER
from balancer.proxy.file_context import FILES
from balancer.proxy.routes import setup_routes
from balancer.replicas.coordination import join, replicas_of
from balancer.replicas.hub import SharedHub, run_shared
from balancer.replicas.slots import watch_room
from balancer.resources import open_resources
from balancer.shutdown import InFlight, ShutdownDeadline, Timer
from balancer.store import Store
from balancer.tasks import stop
from balancer.upstream import Deadline, wall_deadline
from balancer.webhooks.sender import Sleep
from balancer.webhooks.setup import WEBHOOKS, drain_webhooks

log = get_logger("balancer.app")


def create_app(
    settings: Settings,
    *,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    new_id: IdFactory = mint_prompt_id,
    sleep: Sleep = asyncio.sleep,
    run_prober: bool = True,
    session: aiohttp.ClientSession | None = None,
    store: Store | None = None,
    config_path: str | None = None,
    redis: Redis | None = None,
    deadline: Deadline = wall_deadline,
    shutdown_timer: Timer = asyncio.sleep,
) -> web.Application:
    """The balancer's app. With `redis` it is one of several replicas
    sharing it (its caller owns and closes the client). `shutdown_timer`
    waits out what is left of the shutdown's one deadline, on `clock`."""
    registry = Registry(settings.backends)
    given = Injected(clock, wall_clock, new_id, sleep, deadline)
    replicas = replicas_of(settings, redis, wall_clock)
    catalogues = Catalogues()
    metrics = Metrics(
        lambda: registry, catalogues.main_models, replicas.me.name if replicas else None
    )

    def current() -> Settings:
        """The settings now: a reload replaces them on the Balancer."""
        return app[BALANCER].settings if BALANCER in app else settings

    shutdown = ShutdownDeadline(settings.shutdown.timeout, clock, shutdown_timer)
    in_flight = InFlight()
    max_body = settings.limits.max_body
    middleware = request_middleware(current, metrics, max_body, in_flight)  # the only one
    app = web.Application(client_max_size=max_body, middlewares=[middleware])

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        """Start in order, stop in reverse."""
        async with contextlib.AsyncExitStack() as stack:
            opened = await open_resources(stack, settings, session, store, metrics.registry)
            parts = assemble(settings, registry, catalogues, metrics, opened, given, replicas)
            publish(app, parts, opened.sink)
            b = parts.balancer
            stack.push_async_callback(b.follower.ends.close)
            if replicas is not None:
                await join(stack, replicas)
                await watch_room(stack, replicas.slots, b.binder.wake)
            if isinstance(b.hub, SharedHub):
                await run_shared(stack, b.hub)
            if isinstance(b.waiting, SharedWaiting):  # the pool's count, on every socket
                counting = asyncio.create_task(b.waiting.run(b.relay.refresh_status))
                stack.push_async_callback(stop, counting)
            stack.push_async_callback(b.taken.close)
            if b.adoption is not None:  # the jobs of replicas gone, and this name's
                restored = await b.adoption.start()
                keep = asyncio.create_task(b.adoption.keep(given.sleep))
                stack.push_async_callback(stop, keep)
            else:  # the former process's jobs, and the channel ids they were sent with
                resumed = await b.jobs.restore()
                await b.follower.restore()
                b.taken.adopt(resumed)
                restored = len(resumed)
            await parts.access.owners.index_kept()
            if restored:
                log.info("restored", jobs=restored)
            for backend in registry:
                parts.ops.drainer.apply_settings(backend)
                b.channels.start(backend)
            stack.push_async_callback(b.channels.close)
            stack.push_async_callback(b.catalogue_reader.close)
            if run_prober:
                stack.push_async_callback(stop, asyncio.create_task(b.prober.run()))
            stack.push_async_callback(b.binder.close, asyncio.create_task(b.binder.run()))
            stack.push_async_callback(stop, asyncio.create_task(parts.ops.drain_ends.run()))
            b.binder.wake()
            stack.push_async_callback(drain_webhooks, parts.webhooks, shutdown)
            await parts.webhooks.sweep(mine=True)  # owed before a restart, and lapsed
            if replicas is not None:  # another replica's, once their holds lapse
                sweeping = asyncio.create_task(parts.webhooks.keep(given.sleep))
                stack.push_async_callback(stop, sweeping)
            if parts.ops.following is not None:
                interval = lambda: b.settings.probe.interval  # noqa: E731 - reload may change it
                following = asyncio.create_task(parts.ops.following.run(interval))
                stack.push_async_callback(stop, following)
            if config_path:
                owners = parts.access.owners  # a reload that adds keys indexes kept files
                watch = watching_config(b, parts.ops.members, config_path, owners.index_kept)
                await stack.enter_async_context(watch)
            yield

    async def stop_binding(app: web.Application) -> None:
        """Shutdown begins, and its one deadline with it: nothing more is
        bound to a backend; the sends bound so far have until the deadline
        to finish (LateBinder.close)."""
        shutdown.begin()
        if BALANCER in app:
            app[BALANCER].binder.stop_binding(shutdown.left())

    async def close_client_sockets(app: web.Application) -> None:
        """Shutdown: tell every client socket the server is going away (1001)."""
        if BALANCER in app:
            going = app[BALANCER].hub.close_all(WSCloseCode.GOING_AWAY, b"server shutdown")
            await shutdown.within("client sockets", going)

    async def finish_requests(app: web.Application) -> None:
        """Shutdown: the requests in flight finish until the deadline
        (aiohttp's own wait, after this, then finds none left)."""
        await in_flight.finish(shutdown)

    app.on_shutdown.extend((stop_binding, close_client_sockets, finish_requests))
    app.cleanup_ctx.append(lifespan)
    add_status_routes(app.router)
    add_admin_routes(app.router)
    add_sign_in_routes(app.router)
    setup_routes(app)  # ends with the catch-all pass-through
    setup_cors(app, settings.cors.origins)  # after the routes: CORS wraps them
    return app


def publish(app: web.Application, parts: Parts, sink: OutputSink | None) -> None:
    """Each part under the key its route handlers look it up by."""
    app[BALANCER], app[FILES], app[OPS] = parts.balancer, parts.files, parts.ops
    app[ACCESS], app[WEBHOOKS] = parts.access, parts.webhooks
    if sink is not None:
        app[OUTPUTS] = sink
