"""The route class a request is timed under (the README's table), for /metrics.

The class comes from the matched route: ComfyUI routes by their path in the
route table (`/api` prefix dropped), the balancer's own routes are `ops`,
uploads and `/view` are `files`, and the catch-all is `pass-through`.
WebSockets are not timed: a socket's lifetime is not a latency.
"""

from __future__ import annotations

from aiohttp import web

# (method, route path without /api) -> class; anything else by prefix below.
ROUTE_CLASSES: dict[tuple[str, str], str] = {
    ("POST", "/prompt"): "dispatched",
    ("GET", "/prompt"): "aggregated",
    ("GET", "/queue"): "aggregated",
    ("GET", "/history"): "aggregated",
    ("GET", "/system_stats"): "aggregated",
    ("POST", "/queue"): "fan-out",
    ("POST", "/history"): "fan-out",
    ("POST", "/free"): "fan-out",
    ("POST", "/interrupt"): "pinned",
    ("GET", "/history/{prompt_id}"): "pinned",
    ("GET", "/jobs/{job_id}"): "pinned",
    ("POST", "/jobs/{job_id}/cancel"): "pinned",
    ("GET", "/view"): "files",
    ("GET", "/ws"): "websocket",
}
PREFIX_CLASSES: tuple[tuple[str, str], ...] = (
    ("/balancer", "ops"),
    ("/metrics", "ops"),
    ("/upload/", "files"),
)
UNTIMED = frozenset({"websocket"})


def route_class(request: web.Request) -> str:
    route = request.match_info.route
    path = route.resource.canonical if route.resource is not None else request.path
    path = path.removeprefix("/api") if path.startswith("/api/") else path
    method = "GET" if request.method == "HEAD" else request.method
    known = ROUTE_CLASSES.get((method, path))
    if known is not None:
        return known
    for prefix, name in PREFIX_CLASSES:
        if path.startswith(prefix):
            return name
    return "pass-through"
