"""Plug access control into an app: the origin and key gates, CORS from
`cors.origins`, and at start-up the owners index and the socket filter."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_cors
from aiohttp import web

from balancer.auth.access import ACCESS, Access
from balancer.auth.limits import Clock
from balancer.auth.middleware import auth_middleware
from balancer.auth.origin import origin_middleware
from balancer.auth.sessions import Sessions
from balancer.config.model import Settings
from balancer.proxy.context import BALANCER


def install_access(app: web.Application, settings: Settings, wall: Clock) -> None:
    """Call after every route is added (CORS wraps them). `wall` is the
    wall clock session cookies expire by."""

    def current() -> Settings:
        return app[BALANCER].settings if BALANCER in app else settings

    app.middlewares.append(origin_middleware(current))  # type: ignore[arg-type]
    app.middlewares.append(auth_middleware(current))  # type: ignore[arg-type]
    setup_cors(app, settings.cors.origins)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        b = app[BALANCER]
        sessions = Sessions(lambda: b.settings.auth, Path(settings.data_dir), wall)
        access = app[ACCESS] = Access(lambda: b.settings, b.store, b.clock, sessions)
        b.events.subscribe(access.owners)
        b.relay.owner_of = access.owners.of
        b.relay.on_output = access.owners.index_outputs
        yield

    app.cleanup_ctx.append(lifecycle)


def setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """Preflights answered and CORS headers added for the allowed origins."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=True, expose_headers="*", allow_headers="*", allow_methods="*"
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for resource in list(app.router.resources()):
        with contextlib.suppress(ValueError):  # the pass-through's "*" route: not wrapped
            cors.add(resource)


def anonymous_refusal(settings: Settings, host: str) -> str | None:
    """Why `serve` must not listen on `host`, or None. Without keys only a
    loopback address is safe, unless `auth.allow_anonymous` says otherwise."""
    if settings.auth.keys or settings.auth.allow_anonymous or is_loopback_host(host):
        return None
    return (
        f"refusing to listen on {host} without API keys: configure auth.keys,"
        " or set auth.allow_anonymous: true to serve everyone"
    )


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
