"""Everything else goes to one healthy backend: the primary, else the first
healthy one in file order (the UI's static files, /object_info, /models,
/settings, /userdata, /internal/..., custom-node routes)."""

from __future__ import annotations

from aiohttp import web

from balancer.errors import error_response
from balancer.proxy.context import ctx


def has_dot_segments(path: str) -> bool:
    """`.` or `..` in the decoded path (`%2e%2e`, `%2F..%2F` and `\\..\\`
    too): a backend could resolve it to a route the balancer answers itself
    (`/x/../history` is the backend's unfiltered history)."""
    return bool({".", ".."} & set(path.replace("\\", "/").split("/")))


async def passthrough(request: web.Request) -> web.StreamResponse:
    if has_dot_segments(request.path):
        return error_response(400, "invalid_path", "Dot segments are not allowed in paths")
    b = ctx(request)
    primary = b.registry.primary()
    if primary is None:
        return error_response(
            503, "no_backend_available", "no backend is up", headers={"Retry-After": "1"}
        )
    return await b.forwarder.forward(request, primary)
