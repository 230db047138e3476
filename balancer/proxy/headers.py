"""Which headers cross the proxy, and how they are rewritten.

Hop-by-hop headers belong to one connection and are dropped both ways.
`Origin` is rewritten to the backend's own origin, because ComfyUI refuses a
loopback-hosted request whose Origin differs (the balancer does its own
origin checks in front). `X-Forwarded-*` tell the backend who asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)


def _connection_tokens(headers: Mapping[str, str]) -> set[str]:
    value = headers.get("Connection", "")
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def _kept(headers: Mapping[str, str], also_drop: Iterable[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _connection_tokens(headers) | {h.lower() for h in also_drop}
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in drop:
            out.add(key, value)
    return out


def upstream_request_headers(request: web.Request, backend_url: URL) -> CIMultiDict[str]:
    """Headers to send a backend for a proxied client request."""
    headers = _kept(request.headers, ("Host",))
    if "Origin" in headers:
        headers["Origin"] = str(backend_url.origin())
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    return headers


def client_response_headers(upstream: Mapping[str, str]) -> CIMultiDict[str]:
    """Headers to send the client from a backend's answer."""
    return _kept(upstream, ())
