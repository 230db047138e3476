"""Access control around the routes: CORS from `cors.origins`, and whether
`serve` may listen anonymously. (The origin and key gates are middlewares in
the app's one list, balancer/app.py.)"""

from __future__ import annotations

import contextlib
import ipaddress

import aiohttp_cors
from aiohttp import web

from balancer.config.settings import Settings


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
