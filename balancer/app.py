"""Builds the balancer's aiohttp application from settings.

Time, the HTTP session and prompt_id minting are injectable so tests are
deterministic; the prober loop can be left off and driven by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis

from balancer.auth.access import ACCESS, Access
from balancer.auth.middleware import auth_middleware
from balancer.auth.origin import origin_middleware
from balancer.auth.owners import Owners
from balancer.auth.sessions import Sessions
from balancer.auth.setup import setup_cors
from balancer.auth.signin import add_sign_in_routes
from balancer.backends.channel import Channels
from balancer.backends.drain import Drainer
from balancer.backends.prober import Prober
from balancer.backends.registry import Registry
from balancer.backends.state import Clock
from balancer.catalog.book import CatalogueReader, Catalogues
from balancer.catalog.fit import Fitter
from balancer.catalog.residency import Residency
from balancer.config.model import Settings
from balancer.errors import error_middleware
from balancer.jobs.cancel import Canceller
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
from balancer.ops.admin import add_admin_routes
from balancer.ops.backend_admin import BackendAdmin, Following
from balancer.ops.context import OPS, Ops
from balancer.ops.membership import Membership
from balancer.ops.metrics import Metrics
from balancer.ops.routes import add_status_routes
from balancer.ops.setup import watching_config
from balancer.ops.status import JobTally
from balancer.ops.timing import timing_middleware
from balancer.outputs.setup import OUTPUTS
from balancer.outputs.sink import OutputSink
from balancer.proxy.context import BALANCER
from balancer.proxy.file_context import FILES, Files, build_files
from balancer.proxy.forward import Forwarder
from balancer.proxy.kept_reads import KeptReads
from balancer.proxy.presenter import present_entry
from balancer.proxy.routes import setup_routes
from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_relay import EventRelay
from balancer.replicas.coordination import Replicas, join, replicas_of
from balancer.replicas.hub import SharedHub, run_shared
from balancer.resources import Opened, open_resources
from balancer.state import Balancer
from balancer.store import Store
from balancer.store.guard import guarded
from balancer.tasks import stop
from balancer.upstream import Deadline, Upstream, wall_deadline
from balancer.webhooks.sender import Sleep, Webhooks
from balancer.webhooks.setup import WEBHOOKS, drain_webhooks

log = get_logger("balancer.app")


def request_middlewares(
    settings: Callable[[], Settings], metrics: Metrics, max_body: int
) -> list[Middleware]:
    """The one list every request passes through, outermost first."""
    return [
        error_middleware(max_body),  # anything raised below: ComfyUI's error shape
        timing_middleware(metrics),  # time and status per route class, 401s included
        origin_middleware(settings),  # a browser on another origin changes nothing
        auth_middleware(settings),  # a key or session; credentials never go further
    ]


@dataclass(frozen=True)
class Injected:
    """Time, ids and waits: injected, so tests are deterministic."""

    clock: Clock  # monotonic: probes, timeouts, rates
    wall_clock: Clock  # session cookies, replica leases
    new_id: IdFactory  # prompt_ids the client did not choose
    sleep: Sleep  # between webhook delivery attempts
    deadline: Deadline  # how long a call to a backend may take


@dataclass(frozen=True)
class Parts:
    """Everything `assemble` built, each published under its app key."""

    balancer: Balancer
    files: Files
    ops: Ops
    access: Access
    webhooks: Webhooks


def assemble(
    settings: Settings,
    registry: Registry,
    catalogues: Catalogues,
    metrics: Metrics,
    opened: Opened,
    given: Injected,
    replicas: Replicas | None = None,
) -> Parts:
    """The composition root: every part built once, in dependency order,
    with what it needs passed in; every listener is given to its source's
    constructor, and every job-event observer subscribes here or in its own
    constructor. Nothing here does network I/O. `replicas` is what this
    replica shares with the others (None: it runs alone)."""
    http, store, clock = opened.http, opened.store, given.clock
    upstream = Upstream(http, settings.timeouts.request, given.deadline)
    events = JobEvents()
    events.subscribe(SpeedObserver(registry))
    residency = Residency(settings.routing.resident_models, settings.routing.model_load_estimate)
    events.subscribe(residency)
    reader = CatalogueReader(
        catalogues, upstream, settings.catalog.refresh, clock, residency.restarted
    )
    fitter = Fitter(registry, catalogues, residency)
    jobs = Jobs(store, events, time.time)
    routing = Routing(settings.routing)
    files = build_files(settings, store, jobs, registry, http)
    room = replicas.slots if replicas is not None else None
    if room is not None:
        events.subscribe(room)  # a job that leaves its backend gives its slot back
    dispatcher = Dispatcher(
        registry,
        routing,
        fitter,
        jobs,
        upstream,
        settings.probe,
        clock,
        files.placement,
        metrics.routing,
        room,
    )
    recall = Recall(registry, jobs, upstream)
    binder = LateBinder(dispatcher, jobs, routing, Stealer(registry, store, recall), clock)

    async def present(backend: str, prompt_id: str, entry: Any) -> Any:
        return await present_entry(store, backend, prompt_id, entry)

    only_own = replicas is not None  # the other replicas follow theirs
    follower = Follower(registry, jobs, routing, upstream, present, opened.sink, clock, only_own)
    failover = Failover(jobs, routing, clock)
    hub = SharedHub(replicas.bus) if replicas is not None else ClientHub()
    owners = Owners(store)
    relay = EventRelay(
        registry,
        follower,
        hub,
        store,
        clock,
        binder.queue_length_now,
        binder.wake,
        owners.of,
        owners.index_outputs,
    )
    events.subscribe(relay)
    tally = JobTally()
    for observer in (metrics, tally, owners):
        events.subscribe(observer)
    channels = Channels(http, relay, f"lb{secrets.token_hex(4)}")
    drainer = Drainer(upstream, residency.freed, [metrics.drain_changed])
    members = Membership(registry, channels, store, drainer)
    probe_listeners = [  # those that need the store skip a probe while it cannot answer
        guarded("reconcile", follower.reconcile),
        reader.after_probe,
        residency.after_probe,
        failover.probe_succeeded,
        guarded("placement_probe", files.placement.on_probe),
        binder.on_probe,
        drainer.on_probe,
        guarded("membership_probe", members.on_probe),
    ]
    prober = Prober(
        registry,
        upstream,
        settings.probe,
        clock,
        guarded("failover", failover.probe_failed),
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
        submitter=Submitter(jobs, dispatcher, binder, routing, given.new_id),
        follower=follower,
        failover=failover,
        canceller=Canceller(registry, jobs, dispatcher, recall, follower, upstream),
        hub=hub,
        relay=relay,
        channels=channels,
        catalogues=catalogues,
        catalogue_reader=reader,
        residency=residency,
        replicas=replicas,
        kept=KeptReads(upstream, clock),
    )
    sessions = Sessions(lambda: b.settings.auth, Path(settings.data_dir), given.wall_clock)
    access = Access(lambda: b.settings, owners, clock, sessions)
    listen = settings.listen
    webhooks = Webhooks(
        lambda: b.settings.webhooks,
        store,
        opened.hooks_http,
        f"http://{listen.host}:{listen.port}",
        given.sleep,
    )
    events.subscribe(webhooks)
    shared = replicas.changes if replicas is not None else None
    admin = BackendAdmin(registry, members, drainer, shared)
    following = Following(shared, admin) if shared is not None else None
    ops = Ops(metrics, tally, drainer, members, admin, following)
    return Parts(b, files, ops, access, webhooks)


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
) -> web.Application:
    """The balancer's app. With `redis` it is one of several replicas
    sharing it (its caller owns and closes the client)."""
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

    max_body = settings.limits.max_body
    middlewares = request_middlewares(current, metrics, max_body)
    app = web.Application(client_max_size=max_body, middlewares=middlewares)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        """Start in order, stop in reverse."""
        async with contextlib.AsyncExitStack() as stack:
            opened = await open_resources(stack, settings, session, store, metrics.registry)
            parts = assemble(settings, registry, catalogues, metrics, opened, given, replicas)
            publish(app, parts, opened.sink)
            b = parts.balancer
            stack.push_async_callback(b.follower.close)
            if replicas is not None:
                await join(stack, replicas)
            if isinstance(b.hub, SharedHub):
                await run_shared(stack, b.hub)
            restored = await b.jobs.restore()
            if replicas is not None and not await replicas.others_alive():
                # The first replica up: nobody else follows the unfinished jobs.
                b.follower.adopt([job.prompt_id for job in await b.store.unfinished_jobs()])
            await parts.access.owners.index_kept()
            if restored:
                log.info("restored", jobs=restored)
            for backend in registry:
                parts.ops.drainer.apply_settings(backend)
                b.channels.start(backend)
            stack.push_async_callback(b.channels.close)
            if run_prober:
                stack.push_async_callback(stop, asyncio.create_task(b.prober.run()))
            stack.push_async_callback(stop, asyncio.create_task(b.binder.run()))
            b.binder.wake()
            stack.push_async_callback(drain_webhooks, parts.webhooks, settings.shutdown.timeout)
            if parts.ops.following is not None:
                interval = lambda: b.settings.probe.interval  # noqa: E731 - reload may change it
                following = asyncio.create_task(parts.ops.following.run(interval))
                stack.push_async_callback(stop, following)
            if config_path:
                await stack.enter_async_context(watching_config(b, parts.ops.members, config_path))
            yield

    async def close_client_sockets(app: web.Application) -> None:
        """Shutdown: tell every client socket the server is going away (1001)."""
        if BALANCER in app:
            await app[BALANCER].hub.close_all(WSCloseCode.GOING_AWAY, b"server shutdown")

    app.on_shutdown.append(close_client_sockets)
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
