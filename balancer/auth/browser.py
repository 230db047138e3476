"""The HTTP side of browser sign-in: which requests are page loads, where a
sign-in may lead back to, the cookie's flags, the peer and scheme behind
trusted proxies, and the same-origin rule for cookie-carrying requests."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from balancer.auth.origin import origin_allowed
from balancer.auth.sessions import COOKIE, Issued

LOGIN_PATH = "/balancer/login"
LOGOUT_PATH = "/balancer/logout"


def wants_page(request: web.Request) -> bool:
    """A browser loading a page (not a fetch, an image or a socket)."""
    accept = request.headers.get("Accept", "")
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    return request.method in ("GET", "HEAD") and "text/html" in accept and not upgrade


def safe_next(value: object) -> str:
    """A path on this site to return to after sign-in; anything else is `/`.
    Absolute and scheme-relative URLs (`//evil`, `/\\evil`) never pass."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(LOGIN_PATH):
        return "/"
    return value


def login_location(next_path: str) -> str:
    return f"{LOGIN_PATH}?{urlencode({'next': safe_next(next_path)})}"


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _trusted(address: str | None, proxies: tuple[str, ...]) -> bool:
    if not address or not proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net) for net in proxies)


def client_address(request: web.Request, proxies: tuple[str, ...]) -> str:
    """The peer, or behind trusted proxies the nearest untrusted address in
    X-Forwarded-For (a client cannot pick its own rate-limit bucket)."""
    peer = request.remote or ""
    if not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def is_https(request: web.Request, proxies: tuple[str, ...]) -> bool:
    """HTTPS directly, or `X-Forwarded-Proto: https` from a trusted proxy."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and _trusted(request.remote, proxies)


def set_session(response: web.StreamResponse, issued: Issued, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        issued.value,
        max_age=issued.max_age,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


def clear_session(response: web.StreamResponse, secure: bool) -> None:
    response.set_cookie(
        COOKIE, "", max_age=0, path="/", httponly=True, samesite="Lax", secure=secure
    )


def request_origin(request: web.Request) -> str | None:
    """The Origin header, else the origin of the Referer, else None."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin
    referer = urlsplit(request.headers.get("Referer", ""))
    return f"{referer.scheme}://{referer.netloc}" if referer.scheme and referer.netloc else None


def same_site_request(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """For a request whose only credential is the cookie: the page that sent
    it is this balancer or an origin named in `cors.origins` (not `*`)."""
    origin = request_origin(request)
    named = tuple(o for o in allowed if o != "*")
    return origin is not None and origin_allowed(origin, request.host, named)
