"""GET /object_info and /object_info/{class}: the union of the healthy
backends' catalogues (every node class any of them has, every combo list
merged), with LoadImage's and LoadImageMask's `image` choices listing the
balancer's upload store, as ComfyUI lists its own input/ (so the UI offers
what will follow the prompt to any backend). `/models`, `/models/{folder}`
and `/embeddings` are the same union. Before any catalogue is known the
primary answers, as for any pass-through route."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from balancer.auth.uploads import visible_inputs
from balancer.catalog.union import Union
from balancer.errors import error_response
from balancer.files.refs import LOADERS
from balancer.proxy.context import ctx, reply_response, upstream_failed
from balancer.proxy.file_context import files_of
from balancer.upstream import UpstreamError


def with_inputs(info: Any, names: list[str]) -> Any:
    """Replace the `image` choice list of the loader classes in `info`."""
    if not isinstance(info, dict):
        return info
    for class_type in LOADERS & info.keys():
        try:
            spec = info[class_type]["input"]["required"]["image"]
            if isinstance(spec, list) and spec and isinstance(spec[0], list):
                spec[0] = list(names)
        except (KeyError, TypeError):
            continue
    return info


async def _answer(request: web.Request, path: str) -> web.StreamResponse:
    b = ctx(request)
    primary = b.registry.primary()
    if primary is None:
        return error_response(
            503, "no_backend_available", "no backend is up", headers={"Retry-After": "1"}
        )
    try:
        reply = await b.upstream.call("GET", primary.url + path)
    except UpstreamError as exc:
        return upstream_failed(primary, exc)
    if reply.status != 200:
        return reply_response(reply)
    try:
        info = json.loads(reply.body)
    except ValueError:
        return reply_response(reply)
    names = visible_inputs(request, await files_of(request).store.input_images())
    return web.json_response(with_inputs(info, names))


def pool_union(request: web.Request) -> Union | None:
    """The union of the healthy backends' catalogues; None before any is known."""
    b = ctx(request)
    return b.catalogues.union(backend.name for backend in b.registry.healthy())


def _cached(request: web.Request, etag: str, body: Any) -> web.Response:
    """200 with an ETag, or 304 when the client holds this version."""
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers={"ETag": etag})
    return web.json_response(body, headers={"ETag": etag})


async def _union_info(request: web.Request, node_class: str | None) -> web.StreamResponse:
    union = pool_union(request)
    if union is None:
        path = request.rel_url.raw_path.removeprefix("/api")
        return await _answer(request, path)
    names = visible_inputs(request, await files_of(request).store.input_images())
    digest = hashlib.sha256("\0".join(names).encode()).hexdigest()[:8]
    etag = f'"{union.key}-{digest}"'
    info = union.object_info
    if node_class is not None:
        info = {node_class: info[node_class]} if node_class in info else {}
    mine = {k: copy.deepcopy(v) if k in LOADERS else v for k, v in info.items()}
    return _cached(request, etag, with_inputs(mine, names))


async def get_object_info(request: web.Request) -> web.StreamResponse:
    return await _union_info(request, None)


async def get_object_info_class(request: web.Request) -> web.StreamResponse:
    return await _union_info(request, request.match_info["node_class"])


async def _union_list(request: web.Request, pick: Callable[[Union], Any]) -> web.StreamResponse:
    union = pool_union(request)
    if union is None:
        return await _answer(request, request.rel_url.raw_path.removeprefix("/api"))
    body = pick(union)
    if body is None:
        return web.Response(status=404)
    return _cached(request, f'"{union.key}"', body)


async def get_models(request: web.Request) -> web.StreamResponse:
    return await _union_list(request, lambda u: list(u.models))


async def get_models_folder(request: web.Request) -> web.StreamResponse:
    folder = request.match_info["folder"]
    return await _union_list(request, lambda u: u.models.get(folder))


async def get_embeddings(request: web.Request) -> web.StreamResponse:
    return await _union_list(request, lambda u: u.embeddings)
