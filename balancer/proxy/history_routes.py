"""GET /history: every backend's entries and the balancer's kept copies, merged.

A page (`max_items`) costs its own size: the kept copies are held in time
order, so the newest 64 of 100,000 are read off the end, merged with each
backend's own page and sorted as a small set. Without `max_items` the answer
is streamed in chunks of `CHUNK` entries, the loop free between them, so a
client asking for 100,000 entries never holds up everyone else.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from balancer.auth.access import visible_ids
from balancer.errors import error_response
from balancer.proxy import merge
from balancer.proxy.aggregate_routes import healthy_json
from balancer.proxy.context import Balancer, ctx
from balancer.proxy.presenter import present_entry
from balancer.store.kept import KeptHistory, entry_time

CHUNK = 256  # entries serialised between two turns of the loop


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
    kept = b.store.histories()
    visible = visible_ids(request)  # a client key sees only its own jobs: page after filtering
    if visible is not None:
        answers = await healthy_json(b, "/history")
        own = [(pid, kept[pid]) for pid in kept if visible(pid)]
        merged = _merge(b, answers, own, kept)
        merged = [(pid, entry) for pid, entry in merged if visible(pid)]
        return web.json_response(dict(merge.page(merged, max_items, offset)))
    if max_items is None:
        answers = await healthy_json(b, "/history")
        return await _stream(request, kept, _merge(b, answers, (), kept), offset or 0)
    answers = await healthy_json(b, "/history" + merge.upstream_history_query(max_items, offset))
    near = kept.newest(max_items) if offset is None else kept.oldest(offset + max_items)
    merged = _merge(b, answers, near, kept)
    return web.json_response(dict(merge.page(merged, max_items, offset)))


def _merge(
    b: Balancer, answers: list[tuple[str, Any]], near: Any, kept: KeptHistory
) -> list[tuple[str, Any]]:
    def present(backend: str, pid: str, entry: Any) -> Any:
        return present_entry(b.store, backend, pid, entry)

    return merge.merge_histories(answers, present, near, skip=kept)


def _in_order(kept: KeptHistory, extra: list[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Kept entries and the backends' others, oldest first; an entry removed
    while the answer is being written is left out."""
    others = dict(extra)
    keys = heapq.merge(kept.ordered(), ((entry_time(e), -1, pid) for pid, e in extra))
    for _, seq, pid in keys:
        entry = others.get(pid) if seq < 0 else kept.get(pid)
        if entry is not None:
            yield pid, entry


async def _stream(
    request: web.Request, kept: KeptHistory, extra: list[tuple[str, Any]], offset: int
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp
    parts: list[str] = []
    opening = "{"
    for index, (pid, entry) in enumerate(_in_order(kept, extra)):
        if index < offset:
            continue
        parts.append(f"{json.dumps(pid)}: {json.dumps(entry)}")
        if len(parts) == CHUNK:
            await resp.write((opening + ", ".join(parts)).encode())
            parts, opening = [], ", "
            await asyncio.sleep(0)  # let other requests in between chunks
    closing = (opening + ", ".join(parts)) if parts else opening.strip(", ")
    await resp.write((closing + "}").encode())
    await resp.write_eof()
    return resp
