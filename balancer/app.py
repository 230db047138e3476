"""Builds the balancer's aiohttp application from settings.

Time, the HTTP session and prompt_id minting are injectable so tests are
deterministic; the prober loop can be left off and driven by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, web
from redis.asyncio import Redis

from balancer.auth.setup import install_access
from balancer.auth.signin import add_sign_in_routes
from balancer.backends.channel import Channels
from balancer.backends.prober import Prober
from balancer.backends.registry import Registry
from balancer.backends.state import Clock
from balancer.catalog.book import CatalogueReader, Catalogues
from balancer.catalog.fit import Fitter
from balancer.catalog.residency import Residency
from balancer.config.model import Settings
from balancer.errors import error_response
from balancer.jobs.cancel import Canceller
from balancer.jobs.completing import CompletingStep
from balancer.jobs.dispatch import Dispatcher
from balancer.jobs.events import JobEvents
from balancer.jobs.failover import Failover
from balancer.jobs.follow import Follower
from balancer.jobs.ids import IdFactory, mint_prompt_id
from balancer.jobs.late import LateBinder
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.recall import Recall
from balancer.jobs.routing import Routing
from balancer.jobs.speed import SpeedObserver
from balancer.jobs.steal import Stealer
from balancer.jobs.submit import Submitter
from balancer.logs import get_logger
from balancer.ops.context import METRICS
from balancer.ops.setup import install_ops
from balancer.outputs.setup import OUTPUTS, open_sink
from balancer.proxy.context import BALANCER
from balancer.proxy.file_context import FILES, Files, build_files
from balancer.proxy.forward import Forwarder, too_large
from balancer.proxy.kept_reads import KeptReads
from balancer.proxy.presenter import present_entry
from balancer.proxy.routes import setup_routes
from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_relay import EventRelay
from balancer.replicas.changes import BackendChanges
from balancer.replicas.coordination import Replicas
from balancer.replicas.identity import identify
from balancer.replicas.leases import Leases
from balancer.state import Balancer
from balancer.store import MemoryStore, SqliteStore, Store
from balancer.tasks import stop
from balancer.upstream import Upstream
from balancer.webhooks.setup import install_webhooks

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


async def join(stack: contextlib.AsyncExitStack, replicas: Replicas) -> None:
    """Take a lease before serving (Redis unreachable: the start fails),
    keep it while running, give it back on a clean exit."""
    await replicas.leases.renew()
    stack.push_async_callback(replicas.leases.release)
    stack.push_async_callback(stop, asyncio.create_task(replicas.leases.keep()))


def open_store(settings: Settings) -> Store:
    """The store the settings ask for: SQLite by default, under the data dir."""
    keep = settings.history.max_items
    if settings.store.kind == "memory":
        return MemoryStore(keep)
    path = settings.store.path or str(Path(settings.data_dir) / "balancer.db")
    return SqliteStore(path, keep)


def assemble(
    settings: Settings,
    registry: Registry,
    http: aiohttp.ClientSession,
    clock: Clock,
    new_id: IdFactory,
    store: Store,
    completing: CompletingStep | None = None,
    replicas: Replicas | None = None,
) -> tuple[Balancer, Files]:
    """The composition root: every part built once, in dependency order,
    with what it needs passed in. Nothing here does I/O. `completing` runs
    between a job's finish on its backend and its announced end; `replicas`
    is what this replica shares with the others (None: it runs alone)."""
    upstream = Upstream(http, settings.timeouts.request)
    events = JobEvents()
    events.subscribe(SpeedObserver(registry))
    catalogues = Catalogues()
    residency = Residency(settings.routing.resident_models, settings.routing.model_load_estimate)
    events.subscribe(residency)
    reader = CatalogueReader(
        catalogues, upstream, settings.catalog.refresh, clock, residency.restarted
    )
    fitter = Fitter(registry, catalogues, residency)
    jobs = Jobs(store, events, time.time)
    routing = Routing(settings.routing)
    files = build_files(settings, store, jobs, registry, http)
    dispatcher = Dispatcher(
        registry, routing, fitter, jobs, upstream, settings.probe, clock, files.placement
    )
    recall = Recall(registry, jobs, upstream)
    binder = LateBinder(dispatcher, jobs, routing, Stealer(registry, store, recall), clock)

    def present(backend: str, prompt_id: str, entry: Any) -> Any:
        return present_entry(store, backend, prompt_id, entry)

    follower = Follower(registry, jobs, routing, upstream, present, completing, clock)
    failover = Failover(jobs, routing, clock)
    hub = ClientHub()
    relay = EventRelay(registry, follower, hub, store, clock, binder.queue_length_now, binder.wake)
    events.subscribe(relay)
    probe_listeners = [
        follower.reconcile,
        reader.after_probe,
        residency.after_probe,
        failover.probe_succeeded,
        files.placement.on_probe,
        binder.on_probe,
    ]
    prober = Prober(
        registry,
        upstream,
        settings.probe,
        clock,
        failover.probe_failed,
        probe_listeners,
        [reader.backend_down],
    )
    b = Balancer(
        settings=settings,
        registry=registry,
        prober=prober,
        upstream=upstream,
        forwarder=Forwarder(http, settings.limits.max_body, clock),
        store=store,
        clock=clock,
        events=events,
        routing=routing,
        jobs=jobs,
        dispatcher=dispatcher,
        binder=binder,
        submitter=Submitter(jobs, dispatcher, binder, routing, new_id),
        follower=follower,
        failover=failover,
        canceller=Canceller(registry, jobs, dispatcher, recall, follower, upstream),
        hub=hub,
        relay=relay,
        channels=Channels(http, relay, f"lb{secrets.token_hex(4)}"),
        catalogues=catalogues,
        catalogue_reader=reader,
        residency=residency,
        replicas=replicas,
        kept=KeptReads(upstream, clock),
    )
    return b, files


def create_app(
    settings: Settings,
    *,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    new_id: IdFactory = mint_prompt_id,
    run_prober: bool = True,
    session: aiohttp.ClientSession | None = None,
    store: Store | None = None,
    config_path: str | None = None,
    redis: Redis | None = None,
) -> web.Application:
    """The balancer's app. With `redis` it is one of several replicas
    sharing it (its caller owns and closes the client)."""
    max_body = settings.limits.max_body
    middlewares: list[Any] = [error_middleware(max_body)]
    app = web.Application(client_max_size=max_body, middlewares=middlewares)
    registry = Registry(settings.backends)
    replicas = None
    if redis is not None:
        me = identify(settings.replicas, settings.listen)
        leases = Leases(redis, me, settings.replicas.lease, wall_clock)
        replicas = Replicas(me, leases, BackendChanges(redis))

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        """Start in order, stop in reverse."""
        async with contextlib.AsyncExitStack() as stack:
            http = session or make_session(settings)
            if session is None:
                stack.push_async_callback(http.close)
            kept = store or open_store(settings)
            if isinstance(kept, SqliteStore) and store is None:
                stack.callback(kept.close)
            sink = await stack.enter_async_context(
                open_sink(settings.outputs, http, kept, app[METRICS].registry)
            )
            b, files = assemble(settings, registry, http, clock, new_id, kept, sink, replicas)
            app[BALANCER], app[FILES] = b, files
            if sink is not None:
                app[OUTPUTS] = sink
            stack.push_async_callback(b.follower.close)
            if replicas is not None:
                await join(stack, replicas)
            restored = b.jobs.restore()
            if restored:
                log.info("restored", jobs=restored)
            for backend in registry:
                b.channels.start(backend)
            stack.push_async_callback(b.channels.close)
            if run_prober:
                stack.push_async_callback(stop, asyncio.create_task(b.prober.run()))
            stack.push_async_callback(stop, asyncio.create_task(b.binder.run()))
            b.binder.wake()
            yield

    async def close_client_sockets(app: web.Application) -> None:
        """Shutdown: tell every client socket the server is going away (1001)."""
        if BALANCER in app:
            await app[BALANCER].hub.close_all(WSCloseCode.GOING_AWAY, b"server shutdown")

    app.on_shutdown.append(close_client_sockets)
    app.cleanup_ctx.append(lifespan)
    # Before the catch-all route; watches config_path.
    install_ops(app, config_path, replicas.me.name if replicas else None)
    add_sign_in_routes(app.router)
    setup_routes(app)
    install_access(app, settings, wall_clock)  # after the routes: CORS wraps them
    install_webhooks(app)
    return app
