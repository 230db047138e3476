"""The browser origin rule, as ComfyUI's: a page on another origin may not
change state (POST/PUT/PATCH/DELETE, the WebSocket upgrade) unless its origin
is in `cors.origins`."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from balancer.errors import error_response

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def changes_state(request: web.Request) -> bool:
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    return request.method in STATE_CHANGING or upgrade


def forbidden_origin() -> web.Response:
    return error_response(403, "forbidden_origin", "Cross-origin request refused")


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


def cross_origin_write(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """A browser on another origin changing state (POST/PUT/PATCH/DELETE,
    the WebSocket upgrade), its origin not in `cors.origins`: refused."""
    origin = request.headers.get("Origin")
    if origin is None or not changes_state(request):
        return False
    return not origin_allowed(origin, request.host, allowed)
