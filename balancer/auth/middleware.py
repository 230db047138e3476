"""The request gates: the browser origin check, then API-key authentication.

Route classes: `/balancer/health` is always open; `/metrics`, `/balancer`
and `/balancer/status` follow `auth.public_status`; the admin API decides
itself (admin token or an admin-scope key); everything else needs a key
whenever keys are configured.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from balancer.auth.access import access_of
from balancer.auth.principal import ANONYMOUS, PRINCIPAL, Principal, presented_key
from balancer.config.model import Settings
from balancer.errors import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/balancer/health"})
STATUS_PATHS = frozenset({"/metrics", "/balancer", "/balancer/", "/balancer/status"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def unauthorized() -> web.Response:
    """One answer for a missing and a wrong key: no hint which it was."""
    return error_response(
        401,
        "unauthorized",
        "A valid API key is required",
        headers={"WWW-Authenticate": 'Bearer realm="comfyui-balancer"'},
    )


def is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _netloc(host: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit(f"{scheme}://{host}")
    try:
        return (parts.hostname or "", parts.port)
    except ValueError:
        return (parts.hostname or "", -1)


def same_origin(origin: str, host: str | None) -> bool:
    """ComfyUI's rule: the Origin's host equals the Host; ports count only
    when both sides name one."""
    parts = urlsplit(origin)
    if not host or parts.scheme not in ("http", "https"):
        return False
    ohost, oport = _netloc(parts.netloc, parts.scheme)
    hhost, hport = _netloc(host, parts.scheme)
    if not ohost or ohost.lower() != hhost.lower():
        return False
    return oport is None or hport is None or oport == hport


def origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...]) -> bool:
    return same_origin(origin, host) or "*" in allowed or origin.rstrip("/") in allowed


def origin_middleware(settings: Callable[[], Settings]) -> Middleware:
    """A browser on another origin may not change state (POST/PUT/PATCH/DELETE,
    the WebSocket upgrade) unless its origin is in `cors.origins`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        changes = request.method in STATE_CHANGING or upgrade
        allowed = settings().cors.origins
        if origin is not None and changes and not origin_allowed(origin, request.host, allowed):
            return error_response(403, "forbidden_origin", "Cross-origin request refused")
        return await handler(request)

    return middleware


def _admin_token(request: web.Request, settings: Settings) -> bool:
    token = settings.admin.token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    ok = token is not None and scheme.lower() == "bearer"
    return ok and hmac.compare_digest(given.strip().encode(), (token or "").encode())


def without_key(request: web.Request) -> web.Request:
    """The request without the key (header or `token=`), so nothing forwarded
    to a backend carries it."""
    headers = request.headers.copy()
    headers.pop("X-API-Key", None)
    if headers.get("Authorization", "").lower().startswith("bearer "):
        headers.pop("Authorization")
    url = request.rel_url
    if "token" in url.query:
        url = url.without_query_params("token")
    return request.clone(headers=headers, rel_url=url)


def auth_middleware(settings: Callable[[], Settings]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or is_preflight(request):
            return await handler(request)
        ring = access_of(request).keyring()
        if not ring:
            request[PRINCIPAL] = ANONYMOUS
            return await handler(request)
        given = presented_key(request)
        key = ring.match(given) if given is not None else None
        if key is not None:
            clean = without_key(request)
            clean[PRINCIPAL] = Principal(key.name, key.scope, key)
            return await handler(clean)
        current = settings()
        if path.startswith("/balancer/backends"):
            return await handler(request)  # the admin API checks its own token
        if path in STATUS_PATHS and (current.auth.public_status or _admin_token(request, current)):
            return await handler(request)
        return unauthorized()

    return middleware
