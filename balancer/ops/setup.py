"""Plug the operations side into an app: routes, timing middleware, and at
start-up the drainer, membership, metrics subscriptions and the config watcher."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from balancer.backends.drain import Drainer
from balancer.backends.state import Backend
from balancer.config.model import Settings
from balancer.config.reload import ConfigWatcher
from balancer.ops.admin import add_admin_routes
from balancer.ops.backend_admin import BackendAdmin, Following
from balancer.ops.context import METRICS, OPS, Ops
from balancer.ops.membership import Membership
from balancer.ops.metrics import Metrics
from balancer.ops.reconfigure import apply_settings
from balancer.ops.routes import add_status_routes
from balancer.ops.status import JobTally
from balancer.ops.timing import timing_middleware
from balancer.proxy.context import BALANCER
from balancer.state import Balancer
from balancer.tasks import stop


def install_ops(
    app: web.Application, config_path: str | None = None, replica: str | None = None
) -> None:
    """Call before the catch-all pass-through route is added. With several
    replicas, every series carries this one's name as its `replica` label."""

    def backends() -> Iterable[Backend]:
        return app[BALANCER].registry if BALANCER in app else ()

    def known_models() -> frozenset[str]:
        return app[BALANCER].catalogues.main_models() if BALANCER in app else frozenset()

    metrics = Metrics(backends, known_models, replica)
    app[METRICS] = metrics  # the output sink adds its series to this registry
    app.middlewares.insert(0, timing_middleware(metrics))
    add_status_routes(app.router)
    add_admin_routes(app.router)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ops = wire(app[BALANCER], metrics)
        app[OPS] = ops
        b = app[BALANCER]
        watching = start_watcher(b, ops, config_path) if config_path else None
        following = None
        if ops.following is not None:
            interval = lambda: b.settings.probe.interval  # noqa: E731 - reload may change it
            following = asyncio.create_task(ops.following.run(interval))
        yield
        if following is not None:
            await stop(following)
        if watching is not None:
            await stop_watcher(*watching)

    app.cleanup_ctx.append(lifecycle)


def wire(b: Balancer, metrics: Metrics) -> Ops:
    """Subscribe metrics and the tally to job events, drains and decisions."""
    drainer = Drainer(b.upstream, b.residency.freed)
    members = Membership(b, drainer)
    tally = JobTally()
    b.events.subscribe(metrics)
    b.events.subscribe(tally)
    b.dispatcher.decision_listeners.append(metrics.routing)
    drainer.listeners.append(metrics.drain_changed)
    b.prober.listeners.append(drainer.on_probe)
    b.prober.listeners.append(members.on_probe)
    for backend in b.registry:
        drainer.apply_settings(backend)
    shared = b.replicas.changes if b.replicas is not None else None
    admin = BackendAdmin(b.registry, members, drainer, shared)
    following = Following(shared, admin) if shared is not None else None
    return Ops(metrics, tally, drainer, members, admin, following)


def start_watcher(b: Balancer, ops: Ops, path: str) -> tuple[ConfigWatcher, asyncio.Task[None]]:
    """Poll the file every probe interval; SIGHUP reloads at once."""

    async def on_change(settings: Settings) -> None:
        await apply_settings(b, ops.members, settings)

    watcher = ops.watcher = ConfigWatcher(path, on_change, lambda: b.settings.probe.interval)
    task = asyncio.create_task(watcher.run())
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, watcher.trigger)
    return watcher, task


async def stop_watcher(watcher: ConfigWatcher, task: asyncio.Task[None]) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    await stop(task)
    await watcher.close()
