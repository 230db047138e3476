"""The admin API: list, add and remove backends; drain and undrain them.

With `admin.token` set every call needs `Authorization: Bearer <token>`
(compared in constant time); without a token only loopback peers may call.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from balancer.auth.principal import is_admin_key
from balancer.config.backend_list import parse_backend
from balancer.config.errors import ConfigError
from balancer.errors import error_response
from balancer.logs import get_logger
from balancer.ops.context import OPS
from balancer.ops.status import Holdings, backend_status
from balancer.proxy.context import ctx, read_json_object

log = get_logger("balancer.ops")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def refusal(request: web.Request) -> web.Response | None:
    """None if the caller may use the admin API, else the answer to give."""
    if is_admin_key(request):  # an admin-scope API key (balancer.auth)
        return None
    token = ctx(request).settings.admin.token
    if token is None:
        if is_loopback(request.remote) and not ctx(request).settings.auth.keys:
            return None
        return error_response(
            403, "forbidden", "Admin API answers loopback only", "set admin.token to allow others"
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode()):
        return None
    return error_response(
        401,
        "unauthorized",
        "Admin API needs a bearer token",
        headers={"WWW-Authenticate": 'Bearer realm="comfyui-balancer"'},
    )


def admin_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        refused = refusal(request)
        return refused if refused is not None else await handler(request)

    return guarded


async def _row(request: web.Request, name: str) -> dict[str, Any] | None:
    b = ctx(request)
    backend = b.registry.get(name)
    if backend is None:
        return None
    holdings = Holdings(b.catalogues, b.residency)
    return await backend_status(backend, b.clock(), request.app[OPS].tally, b.follower, holdings)


def _unknown(name: str) -> web.Response:
    return error_response(404, "unknown_backend", f"No backend named {name!r}")


async def list_backends(request: web.Request) -> web.StreamResponse:
    rows = [await _row(request, b.name) for b in ctx(request).registry]
    return web.json_response({"backends": rows})


async def add_backend(request: web.Request) -> web.StreamResponse:
    data = await read_json_object(request)
    if isinstance(data, web.Response):
        return data
    try:
        settings = parse_backend(data)
    except ConfigError as exc:
        return error_response(400, "invalid_backend", "Invalid backend", "; ".join(exc.errors))
    registry = ctx(request).registry
    if settings.primary and any(b.settings.primary for b in registry):
        return error_response(400, "invalid_backend", "Invalid backend", "a primary exists")
    try:
        await request.app[OPS].admin.add(data, settings)
    except ValueError as exc:
        return error_response(409, "backend_exists", str(exc))
    return web.json_response(await _row(request, settings.name), status=201)


async def remove_backend(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    backend = await request.app[OPS].admin.remove(name)
    if backend is None:
        return _unknown(name)
    gone = ctx(request).registry.get(name) is None
    return web.json_response({"name": name, "state": "gone" if gone else "removed"}, status=202)


def _drain_route(drained: bool) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        backend = ctx(request).registry.get(name)
        if backend is None:
            return _unknown(name)
        await request.app[OPS].admin.drain(backend, drained)
        return web.json_response(await _row(request, name))

    return handler


async def refresh_catalogue(request: web.Request) -> web.StreamResponse:
    """Read a backend's catalogue now (a model was copied onto it)."""
    name = request.match_info["name"]
    b = ctx(request)
    backend = b.registry.get(name)
    if backend is None:
        return _unknown(name)
    if not await b.catalogue_reader.read(backend):
        return error_response(502, "bad_gateway", f"Could not read the catalogue of {name!r}")
    catalogue = b.catalogues.get(name)
    assert catalogue is not None
    counts = {folder: len(names) for folder, names in catalogue.models.items() if names}
    return web.json_response({"name": name, "nodes": len(catalogue.classes), "models": counts})


def add_admin_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/balancer/backends", admin_only(list_backends))
    router.add_post("/balancer/backends", admin_only(add_backend))
    router.add_delete("/balancer/backends/{name}", admin_only(remove_backend))
    router.add_post("/balancer/backends/{name}/drain", admin_only(_drain_route(True)))
    router.add_post("/balancer/backends/{name}/undrain", admin_only(_drain_route(False)))
    router.add_post("/balancer/backends/{name}/refresh", admin_only(refresh_catalogue))
