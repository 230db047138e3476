"""Routes that belong to one prompt and go to the backend that owns it."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from aiohttp import web

from balancer.auth.access import may_see, visible_ids
from balancer.auth.tenancy import interrupt_own
from balancer.outputs.setup import present
from balancer.proxy.context import (
    ctx,
    read_json_object,
    reply_response,
    upstream_failed,
)
from balancer.proxy.presenter import present_entry
from balancer.state import Balancer
from balancer.upstream import UpstreamError


async def get_history_item(request: web.Request) -> web.StreamResponse:
    """GET /history/{id}: the owner's entry with outputs renamed; `{}` if unknown."""
    b = ctx(request)
    prompt_id = request.match_info["prompt_id"]
    if not await may_see(request, prompt_id):  # another tenant's: like an unknown id
        return web.json_response({})
    kept = await b.store.get_history(prompt_id)
    if kept is not None:  # finished: answered by the balancer, whatever the backend does
        return web.json_response({prompt_id: await present(request, kept)})
    backend = await b.owner_of(prompt_id)
    held = await b.follower.ends.holding(prompt_id)  # not ended yet: like a running one
    if backend is None or held:
        return web.json_response({})
    try:
        reply = await b.upstream.call("GET", f"{backend.url}/history/{prompt_id}")
        data = reply.json() if reply.status == 200 else None
    except UpstreamError as exc:
        return upstream_failed(backend, exc)
    if not isinstance(data, dict):
        return reply_response(reply)
    return web.json_response(
        {pid: await present_entry(b.store, backend.name, pid, e) for pid, e in data.items()}
    )


async def post_interrupt(request: web.Request) -> web.StreamResponse:
    """With a prompt_id: the owner only (unknown ids are a no-op, as in
    ComfyUI). Without one: a client key's own running jobs; else, with a
    `client_id` (body or query), that client's running jobs; else every
    backend, ComfyUI's "stop whatever runs" (one server runs one job)."""
    b = ctx(request)
    body = await read_json_object(request, empty_ok=True)
    if isinstance(body, web.Response):
        return body
    prompt_id = body.get("prompt_id")
    visible = visible_ids(request)
    if prompt_id is None and visible is not None:  # a client key: its own jobs only
        await interrupt_own(b, visible)
        return web.Response(status=200)
    client_id = body.get("client_id") or request.query.get("client_id")
    if prompt_id is None and isinstance(client_id, str):  # that client's running jobs only
        await interrupt_own(b, partial(is_client_of, b, client_id))
        return web.Response(status=200)
    if prompt_id is not None and not await may_see(request, str(prompt_id)):
        return web.Response(status=200)  # another tenant's: a no-op, like an unknown id
    if prompt_id is None:
        targets = b.registry.healthy()
    else:
        owner = await b.owner_of(str(prompt_id))
        targets = [owner] if owner else []
    for backend, reply in await b.each(targets, "POST", "/interrupt", body):
        if isinstance(reply, UpstreamError):
            return upstream_failed(backend, reply)
    return web.Response(status=200)


async def is_client_of(b: Balancer, client_id: str, prompt_id: str) -> bool:
    job = await b.store.get_job(prompt_id)
    return job is not None and job.client_id == client_id


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()
