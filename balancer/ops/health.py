"""GET /balancer/health: is this process serving, and how many backends are up.

It answers 200 whenever the balancer itself runs, so a container health check
does not restart a healthy balancer because its GPUs are busy or down.
"""

from __future__ import annotations

from aiohttp import web

from balancer.proxy.context import ctx


async def get_health(request: web.Request) -> web.StreamResponse:
    registry = ctx(request).registry
    return web.json_response(
        {"status": "ok", "backends": len(registry), "backends_up": len(registry.healthy())}
    )
