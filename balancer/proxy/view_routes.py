"""GET /view: a file reaches the backend that holds it, and only that one."""

from __future__ import annotations

from aiohttp import web

from balancer.auth.uploads import may_use
from balancer.backends.state import Backend
from balancer.files.naming import BACKEND_FILE_TYPES, from_client_subfolder
from balancer.files.paths import split_annotation
from balancer.proxy.context import Balancer, ctx
from balancer.proxy.input_view import in_store, view_stored

ANNOTATIONS = {" [output]": "output", " [input]": "input", " [temp]": "temp"}


def file_type(filename: str, declared: str) -> str:
    """An annotated filename (`x.png [temp]`) overrides `type`, as in ComfyUI."""
    for suffix, kind in ANNOTATIONS.items():
        if filename.endswith(suffix):
            return kind
    return declared


def owner_of_file(b: Balancer, backend_name: str | None) -> Backend | None:
    """The backend named by the subfolder prefix. Without a prefix the owner
    is only certain when there is one backend: never guess between several."""
    if backend_name is not None:
        return b.registry.get(backend_name)
    backends = list(b.registry)
    return backends[0] if len(backends) == 1 else None


async def get_view(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    filename = request.query.get("filename", "")
    kind = file_type(filename, request.query.get("type", "output"))
    plain, _ = split_annotation(filename, kind)
    if filename and not may_use(request, kind, request.query.get("subfolder", ""), plain):
        return web.Response(status=404)  # another tenant's file: like a missing one
    if filename and (kind == "input" or in_store(request, plain, kind)):
        return await view_stored(request, plain, kind)  # the balancer's upload store
    if not filename or kind not in BACKEND_FILE_TYPES:
        primary = b.registry.primary()
        if primary is None:
            return web.Response(status=404)
        return await b.forwarder.forward(request, primary.url)
    sub = from_client_subfolder(request.query.get("subfolder", ""))
    backend = owner_of_file(b, sub.backend)
    if backend is None:
        return web.Response(status=404)
    target = request.rel_url.update_query({"subfolder": sub.subfolder})
    return await b.forwarder.forward(request, backend.url, target.raw_path_qs)
