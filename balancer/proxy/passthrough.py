"""Everything else goes to one healthy backend: the primary, else the first
healthy one in file order (the UI's static files, /object_info, /models,
/settings, /userdata, /internal/..., custom-node routes)."""

from __future__ import annotations

from aiohttp import web

from balancer.errors import error_response
from balancer.proxy.context import ctx


async def passthrough(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    primary = b.registry.primary()
    if primary is None:
        return error_response(
            503, "no_backend_available", "no backend is up", headers={"Retry-After": "1"}
        )
    return await b.forwarder.forward(request, primary.url)
