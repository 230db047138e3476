"""GET /object_info and /object_info/{class}: the primary's answer, with
LoadImage's and LoadImageMask's `image` choices listing the balancer's upload
store, as ComfyUI lists its own input/ (so the UI offers what will follow the
prompt to any backend)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from balancer.auth.uploads import visible_inputs
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
    names = visible_inputs(request, files_of(request).store.input_images())
    return web.json_response(with_inputs(info, names))


async def get_object_info(request: web.Request) -> web.StreamResponse:
    return await _answer(request, "/object_info")


async def get_object_info_class(request: web.Request) -> web.StreamResponse:
    return await _answer(request, request.rel_url.raw_path.removeprefix("/api"))
