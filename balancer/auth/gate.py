"""The request gates: the browser origin check, then authentication.
`admit` is the step of the one request middleware (balancer/middleware.py)
that decides whether a request reaches its route.

Access is an allow-list of matched routes (`balancer.auth.public`):
`/balancer/health`, `/balancer/ready` and the sign-in pages are always
open; `/metrics`, `/balancer` and `/balancer/status` follow
`auth.public_status`; the admin API decides itself (admin token or an
admin-scope key); every other route needs a key or a session cookie whenever
keys are configured. A page load without
either is sent to the sign-in page; other requests get 401. CORS preflights
are answered here and never forwarded; no credential is ever forwarded.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from balancer.auth.access import Access, access_of
from balancer.auth.browser import (
    clear_session,
    is_https,
    login_location,
    redirect,
    same_site_request,
    set_session,
    wants_page,
)
from balancer.auth.origin import (
    changes_state,
    cross_origin_write,
    forbidden_origin,
    origin_allowed,
)
from balancer.auth.principal import ANONYMOUS, PRINCIPAL, KeyRing, Principal, presented_key
from balancer.auth.public import RouteAccess, needs_admin, route_access
from balancer.auth.sessions import COOKIE
from balancer.config.settings import Settings
from balancer.errors import error_response

CREDENTIAL_HEADERS = ("Authorization", "X-API-Key", "Proxy-Authorization")


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


def _admin_token(request: web.Request, settings: Settings) -> bool:
    token = settings.admin.token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    ok = token is not None and scheme.lower() == "bearer"
    return ok and hmac.compare_digest(given.strip().encode(), (token or "").encode())


def _without_session(values: list[str]) -> str:
    pairs = [p.strip() for v in values for p in v.split(";") if p.strip()]
    return "; ".join(p for p in pairs if p.split("=", 1)[0].strip() != COOKIE)


def carries_credentials(request: web.Request) -> bool:
    """Whether anything `without_credentials` strips is there."""
    headers = request.headers
    return (
        any(name in headers for name in CREDENTIAL_HEADERS)
        or any(COOKIE in value for value in headers.getall("Cookie", ()))
        or "token" in request.rel_url.query
    )


def without_credentials(request: web.Request) -> web.Request:
    """The request without any credential: every `Authorization`, `X-API-Key`
    and `Proxy-Authorization` header however often it is repeated, every
    `token` query parameter and the session cookie (other cookies stay), so
    nothing forwarded to a backend carries one. A request with none is
    passed on as it is (a clone costs about 7 % of a small GET)."""
    if not carries_credentials(request):
        return request
    headers = request.headers.copy()
    for name in CREDENTIAL_HEADERS:
        headers.popall(name, None)
    if any(COOKIE in value for value in headers.getall("Cookie", ())):  # every Cookie line
        kept = _without_session(headers.popall("Cookie"))
        if kept:
            headers["Cookie"] = kept
    url = request.rel_url
    if "token" in url.query:
        url = url.without_query_params("token")
    return request.clone(headers=headers, rel_url=url)


def authenticate(
    request: web.Request, access: Access, ring: KeyRing
) -> tuple[Principal | None, bool]:
    """Who is calling, and whether only the session cookie says so.

    The key it presents (a wrong one is refused, whatever cookie comes with
    it), else its session cookie; ANONYMOUS when no keys are configured;
    None when keys are on and no valid credential came."""
    if not ring:
        return ANONYMOUS, False
    given = presented_key(request)
    session = request.cookies.get(COOKIE) if given is None else None
    if given is not None:
        key = ring.match(given)
    else:
        key = access.sessions.verify(session, ring) if session else None
    principal = Principal(key.name, key.scope, key) if key is not None else None
    return principal, principal is not None and session is not None


def csrf_safe(request: web.Request, settings: Settings) -> bool:
    """A cookie is sent by the browser on its own, so a state-changing
    request that only carries the cookie must come from this site's pages."""
    return not changes_state(request) or same_site_request(request, settings.cors.origins)


def may_pass_without_key(request: web.Request, access: RouteAccess, settings: Settings) -> bool:
    """The allow-list: open routes, the status routes while public (or with
    the admin token), and the admin API (which checks its own token)."""
    if access == "status":
        return settings.auth.public_status or _admin_token(request, settings)
    return access in ("open", "admin", "sign_in")


def token_sign_in(request: web.Request, access: Access, ring: KeyRing) -> web.Response:
    """`?token=` on a page URL: sign in, then the same URL without the token."""
    target = str(request.rel_url.without_query_params("token"))
    key = ring.match(request.query["token"])
    if key is None:
        return redirect(login_location(target))
    response = redirect(target)
    secure = is_https(request, access.settings().auth.trusted_proxies)
    set_session(response, access.sessions.issue(key), secure)
    return response


def refuse(request: web.Request, access: Access) -> web.Response:
    """A page load goes to the sign-in page (dropping a dead cookie); an API
    client gets 401 in ComfyUI's error shape."""
    if not wants_page(request):
        return unauthorized()
    response = redirect(login_location(str(request.rel_url)))
    if COOKIE in request.cookies:
        clear_session(response, is_https(request, access.settings().auth.trusted_proxies))
    return response


def admit(request: web.Request, settings: Settings) -> web.Request | web.StreamResponse:
    """The request as its route's handler gets it (with its principal, and
    without credentials where it is forwarded), or the answer that refuses
    it. A browser on another origin may not change state unless its origin
    is in `cors.origins`; a preflight is answered here, never forwarded."""
    allowed = settings.cors.origins
    if cross_origin_write(request, allowed):
        return forbidden_origin()
    if is_preflight(request):
        return preflight(request, allowed)
    access = access_of(request)
    ring = access.keyring()
    if ring and "token" in request.query and wants_page(request):
        return token_sign_in(request, access, ring)
    principal, by_cookie = authenticate(request, access, ring)
    if by_cookie and not csrf_safe(request, settings):
        return forbidden_origin()
    route = route_access(request)
    if principal is None and not may_pass_without_key(request, route, settings):
        return refuse(request, access)
    if principal is not None and principal.scope == "client" and needs_admin(request):
        return error_response(403, "forbidden", "This route needs an admin key")
    # The admin API and the sign-in pages read credentials and forward
    # nothing; every other handler gets the request without them.
    clean = request if route in ("admin", "sign_in") else without_credentials(request)
    if principal is not None:
        clean[PRINCIPAL] = principal
    return clean


def preflight(request: web.Request, allowed: tuple[str, ...]) -> web.Response:
    """The balancer answers every CORS preflight itself: 200 with the CORS
    headers for an allowed origin, 403 otherwise."""
    origin = request.headers.get("Origin")
    if origin is None or not origin_allowed(origin, request.host, allowed):
        return forbidden_origin()
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
