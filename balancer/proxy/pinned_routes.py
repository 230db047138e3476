"""Routes that belong to one prompt and go to the backend that owns it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from balancer.auth.access import may_see, visible_ids
from balancer.auth.tenancy import interrupt_own
from balancer.files.naming import rewrite_file_item, rewrite_ui_output
from balancer.outputs.setup import present
from balancer.proxy.context import (
    Balancer,
    ctx,
    read_json_object,
    reply_response,
    upstream_failed,
)
from balancer.proxy.presenter import client_extra_data, present_entry
from balancer.upstream import UpstreamError


async def get_history_item(request: web.Request) -> web.StreamResponse:
    """GET /history/{id}: the owner's entry with outputs renamed; `{}` if unknown."""
    b = ctx(request)
    prompt_id = request.match_info["prompt_id"]
    if not may_see(request, prompt_id):  # another tenant's: like an unknown id
        return web.json_response({})
    kept = b.store.get_history(prompt_id)
    if kept is not None:  # finished: answered by the balancer, whatever the backend does
        return web.json_response({prompt_id: await present(request, kept)})
    backend = b.owner_of(prompt_id)
    if backend is None or b.relay.holding(prompt_id):  # held: not ended yet, like a running one
        return web.json_response({})
    try:
        reply = await b.upstream.call("GET", f"{backend.url}/history/{prompt_id}")
        data = reply.json() if reply.status == 200 else None
    except UpstreamError as exc:
        return upstream_failed(backend, exc)
    if not isinstance(data, dict):
        return reply_response(reply)
    return web.json_response(
        {pid: present_entry(b.store, backend.name, pid, e) for pid, e in data.items()}
    )


def rewrite_job(b: Balancer, backend: str, job: Any) -> Any:
    """A newer server's /api/jobs/{id} answer with its outputs renamed and the
    client's own client_id."""
    if not isinstance(job, dict):
        return job
    out = dict(job)
    workflow = job.get("workflow")
    if isinstance(workflow, dict) and "extra_data" in workflow:
        extra = client_extra_data(b.store, job.get("id"), workflow["extra_data"])
        out["workflow"] = {**workflow, "extra_data": extra}
    if isinstance(job.get("outputs"), dict):
        out["outputs"] = {n: rewrite_ui_output(backend, o) for n, o in job["outputs"].items()}
    if "preview_output" in job:
        out["preview_output"] = rewrite_file_item(backend, job["preview_output"])
    return out


async def get_job(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    job_id = request.match_info["job_id"]
    backend = b.owner_of(job_id) if may_see(request, job_id) else None
    if backend is None:
        return web.json_response({"error": "Job not found"}, status=404)
    try:
        reply = await b.upstream.call("GET", f"{backend.url}/api/jobs/{job_id}")
        data = reply.json() if reply.status == 200 else None
    except UpstreamError as exc:
        return upstream_failed(backend, exc)
    if data is None:
        return reply_response(reply)
    job = rewrite_job(b, backend.name, data)
    kept = b.store.get_history(job_id)
    if isinstance(job, dict) and isinstance(kept, dict) and "outputs" in job:
        job["outputs"] = (await present(request, kept)).get("outputs", job["outputs"])
    return web.json_response(job)


async def cancel_job(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    job_id = request.match_info["job_id"]
    if not may_see(request, job_id):
        return web.json_response({"cancelled": False})
    if b.binder.remove(job_id):  # still waiting in the balancer
        b.relay.refresh_status()
        return web.json_response({"cancelled": True})
    backend = b.owner_of(job_id)
    if backend is None:
        return web.json_response({"cancelled": False})
    try:
        reply = await b.upstream.call("POST", f"{backend.url}/api/jobs/{job_id}/cancel", body=b"")
    except UpstreamError as exc:
        return upstream_failed(backend, exc)
    return reply_response(reply)


async def post_interrupt(request: web.Request) -> web.StreamResponse:
    """With a prompt_id: the owner only (unknown ids are a no-op, as in
    ComfyUI). Without: every backend, ComfyUI's "stop whatever runs"."""
    b = ctx(request)
    body = await read_json_object(request, empty_ok=True)
    if isinstance(body, web.Response):
        return body
    prompt_id = body.get("prompt_id")
    visible = visible_ids(request)
    if prompt_id is None and visible is not None:  # a client key: its own jobs only
        await interrupt_own(b, visible)
        return web.Response(status=200)
    if prompt_id is not None and not may_see(request, str(prompt_id)):
        return web.Response(status=200)  # another tenant's: a no-op, like an unknown id
    if prompt_id is None:
        targets = b.registry.healthy()
    else:
        owner = b.owner_of(str(prompt_id))
        targets = [owner] if owner else []
    for backend, reply in await b.each(targets, "POST", "/interrupt", body):
        if isinstance(reply, UpstreamError):
            return upstream_failed(backend, reply)
    return web.Response(status=200)


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()
