"""The request gates: the browser origin check, then API-key authentication.

Access is an allow-list of matched routes (`balancer.auth.public`):
`/balancer/health` and `/balancer/ready` are always open; `/metrics`, `/balancer` and
`/balancer/status` follow `auth.public_status`; the admin API decides itself
(admin token or an admin-scope key); every other route needs a key whenever
keys are configured. CORS preflights are answered here and never forwarded;
no credential is ever forwarded.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from balancer.auth.access import access_of
from balancer.auth.principal import ANONYMOUS, PRINCIPAL, Principal, presented_key
from balancer.auth.public import RouteAccess, needs_admin, route_access
from balancer.config.model import Settings
from balancer.errors import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

CREDENTIAL_HEADERS = ("Authorization", "X-API-Key", "Proxy-Authorization")
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


def without_credentials(request: web.Request) -> web.Request:
    """The request without any credential: every `Authorization`, `X-API-Key`
    and `Proxy-Authorization` header however often it is repeated, and every
    `token` query parameter, so nothing forwarded to a backend carries one."""
    headers = request.headers.copy()
    for name in CREDENTIAL_HEADERS:
        headers.popall(name, None)
    url = request.rel_url
    if "token" in url.query:
        url = url.without_query_params("token")
    return request.clone(headers=headers, rel_url=url)


def authenticate(request: web.Request) -> Principal | None:
    """Who is calling: the key it presents, ANONYMOUS when no keys are
    configured, None when keys are on and none of them was presented."""
    ring = access_of(request).keyring()
    if not ring:
        return ANONYMOUS
    given = presented_key(request)
    key = ring.match(given) if given is not None else None
    return Principal(key.name, key.scope, key) if key is not None else None


def may_pass_without_key(request: web.Request, access: RouteAccess, settings: Settings) -> bool:
    """The allow-list: open routes, the status routes while public (or with
    the admin token), and the admin API (which checks its own token)."""
    if access == "status":
        return settings.auth.public_status or _admin_token(request, settings)
    return access in ("open", "admin")


def auth_middleware(settings: Callable[[], Settings]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_preflight(request):
            return preflight(request, settings().cors.origins)  # never forwarded
        principal = authenticate(request)
        access = route_access(request)
        if principal is None and not may_pass_without_key(request, access, settings()):
            return unauthorized()
        if principal is not None and principal.scope == "client" and needs_admin(request):
            return error_response(403, "forbidden", "This route needs an admin key")
        # The admin API reads its token and forwards nothing; every other
        # handler gets the request without credentials.
        clean = request if access == "admin" else without_credentials(request)
        if principal is not None:
            clean[PRINCIPAL] = principal
        return await handler(clean)

    return middleware


def preflight(request: web.Request, allowed: tuple[str, ...]) -> web.Response:
    """The balancer answers every CORS preflight itself: 200 with the CORS
    headers for an allowed origin, 403 otherwise."""
    origin = request.headers.get("Origin")
    if origin is None or not origin_allowed(origin, request.host, allowed):
        return error_response(403, "forbidden_origin", "Cross-origin request refused")
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": request.headers["Access-Control-Request-Method"],
        "Vary": "Origin",
    }
    wanted = request.headers.get("Access-Control-Request-Headers")
    if wanted:
        headers["Access-Control-Allow-Headers"] = wanted
    return web.Response(status=200, headers=headers)
