"""Route handlers reach the app state (balancer/state.py) through `ctx`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer import client_json
from balancer.backends.state import Backend
from balancer.errors import error_response
from balancer.state import Balancer
from balancer.upstream import UpstreamError, UpstreamReply

BALANCER: web.AppKey[Balancer] = web.AppKey("balancer", Balancer)


def ctx(request: web.Request) -> Balancer:
    return request.app[BALANCER]


def reply_response(reply: UpstreamReply) -> web.Response:
    """Relay a backend answer the balancer read whole."""
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


def upstream_failed(backend: Backend, exc: UpstreamError) -> web.Response:
    return error_response(502, "bad_gateway", f"Backend {backend.name} failed", str(exc))


async def read_json_object(request: web.Request, *, empty_ok: bool = False) -> Any:
    """Like `read_json`, but the body must be a JSON object. With `empty_ok`,
    an empty or unparseable body counts as `{}` (ComfyUI's /interrupt rule)."""
    raw = await request.read()
    if empty_ok and not raw.strip():
        return {}
    try:
        data = client_json.parse(raw)
    except ValueError as exc:
        if empty_ok:
            return {}
        return error_response(400, "invalid_json", "Request body is not valid JSON", str(exc))
    if not isinstance(data, dict):
        return error_response(400, "invalid_json", "Request body must be a JSON object")
    return data
