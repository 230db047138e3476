"""Reads that span every backend: /queue, /history, /system_stats."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer.auth.access import visible_ids
from balancer.auth.tenancy import filter_queue
from balancer.errors import error_response
from balancer.proxy import merge
from balancer.proxy.context import Balancer, ctx
from balancer.proxy.presenter import present_entry, present_queue_item, waiting_item
from balancer.upstream import UpstreamError


async def healthy_json(b: Balancer, path: str) -> list[tuple[str, Any]]:
    """(backend name, parsed answer) of every healthy backend that answered 200;
    concurrent calls for the same path share one round."""
    answers: list[tuple[str, Any]] = await b.reads.get(path, lambda: _fetch_all(b, path))
    return answers


async def _fetch_all(b: Balancer, path: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for backend, reply in await b.each_healthy("GET", path):
        if isinstance(reply, UpstreamError) or reply.status != 200:
            continue
        try:
            out.append((backend.name, reply.json()))
        except UpstreamError:
            continue
    return out


async def get_queue(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    answers = await healthy_json(b, "/queue")
    queues = [data for _, data in answers]
    merged = merge.merge_queues(queues, lambda item: present_queue_item(b.store, item))
    merged["queue_pending"] += [waiting_item(job) for job in b.binder.queue]
    visible = visible_ids(request)  # a client key sees only its own jobs
    return web.json_response(merged if visible is None else filter_queue(merged, visible))


def _int_param(request: web.Request, name: str) -> int | web.Response | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        return error_response(
            400, "invalid_query", f"{name} must be a non-negative integer", f"{name}={raw}"
        )
    return value


async def get_history(request: web.Request) -> web.StreamResponse:
    max_items = _int_param(request, "max_items")
    offset = _int_param(request, "offset")
    if isinstance(max_items, web.Response):
        return max_items
    if isinstance(offset, web.Response):
        return offset
    b = ctx(request)
    visible = visible_ids(request)  # a client key sees only its own jobs: page after filtering
    query = merge.upstream_history_query(max_items, offset) if visible is None else ""
    answers = await healthy_json(b, "/history" + query)
    merged = merge.merge_histories(
        answers,
        lambda backend, pid, e: present_entry(b.store, backend, pid, e),
        b.store.histories(),
    )
    if visible is not None:
        merged = [(pid, entry) for pid, entry in merged if visible(pid)]
    return web.json_response(dict(merge.page(merged, max_items, offset)))


async def get_system_stats(request: web.Request) -> web.StreamResponse:
    answers = await healthy_json(ctx(request), "/system_stats")
    return web.json_response(merge.merge_system_stats(answers))
