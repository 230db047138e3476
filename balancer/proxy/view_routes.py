"""GET /view: a file reaches the backend that holds it, and only that one.

The requested file is resolved first (ComfyUI's rules: a filename starting
with `/` or containing `..` is 400, a subfolder escaping its directory 403;
the filename is reduced to its basename), then the caller's right to it is
checked on that location, and the store or the backend is asked for that
same location, never for the raw query.
"""

from __future__ import annotations

from aiohttp import web

from balancer.auth.uploads import may_use
from balancer.backends.state import Backend
from balancer.files.locate import Location, locate
from balancer.files.naming import BACKEND_FILE_TYPES
from balancer.files.paths import BadPath, split_annotation
from balancer.outputs.setup import OUTPUTS
from balancer.outputs.view import view_from_bucket
from balancer.proxy.context import ctx
from balancer.proxy.input_view import stored_sha, view_stored
from balancer.state import Balancer

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


def requested(request: web.Request, filename: str) -> Location | web.Response:
    """The location a /view asks for, or ComfyUI's refusal."""
    kind = file_type(filename, request.query.get("type", "output"))
    plain, _ = split_annotation(filename, kind)
    if plain.startswith("/") or ".." in plain:
        return web.Response(status=400)
    name = plain.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return locate(kind, request.query.get("subfolder", ""), name)
    except BadPath as exc:
        return web.Response(status=403 if exc.escape else 400)


async def get_view(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    filename = request.query.get("filename", "")
    if not filename:
        primary = b.registry.primary()
        if primary is None:
            return web.Response(status=404)
        return await b.forwarder.forward(request, primary)
    location = requested(request, filename)
    if isinstance(location, web.Response):
        return location
    if not may_use(request, location):
        return web.Response(status=404)  # another tenant's file: like a missing one
    key = location.key
    sha = await stored_sha(request, key) if location.backend is None else None
    if location.backend is None and (key.type == "input" or sha is not None):
        return await view_stored(request, key, sha)  # the balancer's upload store
    sink = request.app.get(OUTPUTS)
    ref = (key.type, location.client_subfolder, key.name)
    stored = await view_from_bucket(request, sink, ref) if sink is not None else None
    if stored is not None:  # kept in the bucket: served even if its backend is gone
        return stored
    backend = owner_of_file(b, location.backend)
    if backend is None or key.type not in BACKEND_FILE_TYPES:
        return web.Response(status=404)
    canonical = {"filename": key.name, "subfolder": key.subfolder, "type": key.type}
    target = request.rel_url.update_query(canonical)
    return await b.forwarder.forward(request, backend, target.raw_path_qs)
