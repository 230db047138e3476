"""GET /history: every backend's entries and the balancer's kept copies, merged.

A page (`max_items`) costs its own size: the kept copies are held in time
order as JSON text, so the newest 64 of 100,000 are read off the end and
written as they are, merged with each backend's own page. Without
`max_items` the answer is streamed in chunks of `CHUNK` entries, the loop free
between them, so a client asking for 100,000 entries never holds up everyone
else. A client key sees only its own jobs: those are filtered, then paged.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web

from balancer.auth.access import visible_ids
from balancer.errors import error_response
from balancer.outputs.setup import present as with_urls
from balancer.outputs.setup import present_raw
from balancer.proxy import merge
from balancer.proxy.aggregate_routes import healthy_json
from balancer.proxy.context import ctx
from balancer.proxy.presenter import present_entry
from balancer.state import Balancer
from balancer.store.kept import KeptHistory, Raw, entry_time

CHUNK = 256  # entries written between two turns of the loop
JSON = "application/json"


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
    kept = await b.store.histories()
    visible = visible_ids(request)
    if visible is not None:
        answers = await healthy_json(b, "/history")
        own = [(pid, kept[pid]) for pid in list(kept) if await visible(pid)]
        merged = merge.merge_histories(await _presented(b, answers, kept), as_is, own, skip=kept)
        merged = [(pid, entry) for pid, entry in merged if await visible(pid)]
        page = merge.page(merged, max_items, offset)
        return web.json_response({pid: await with_urls(request, entry) for pid, entry in page})
    if max_items is None:
        answers = await healthy_json(b, "/history")
        return await _stream(request, kept, await _others(b, answers, kept), offset or 0)
    answers = await healthy_json(b, "/history" + merge.upstream_history_query(max_items, offset))
    near = kept.newest(max_items) if offset is None else kept.oldest(offset + max_items)
    items = sorted([*near, *await _others(b, answers, kept)], key=lambda item: item[0])
    page = [await present_raw(request, item) for item in merge.page(items, max_items, offset)]
    return web.Response(body=_body(page), content_type=JSON)


Answers = list[tuple[str, Any]]


async def _presented(b: Balancer, answers: Answers, kept: KeptHistory) -> Answers:
    """Each backend's history as clients see it, without the entries kept."""
    shown: Answers = []
    for name, history in answers:
        if isinstance(history, dict):
            fresh = [(pid, e) for pid, e in history.items() if pid not in kept]
            shown.append((name, {p: await present_entry(b.store, name, p, e) for p, e in fresh}))
    return shown


def as_is(backend: str, prompt_id: str, entry: Any) -> Any:
    return entry


async def _others(b: Balancer, answers: Answers, kept: KeptHistory) -> list[Raw]:
    """The backends' entries the balancer does not keep, presented, as JSON."""
    merged = merge.merge_histories(await _presented(b, answers, kept), as_is, skip=kept)
    holding = b.follower.ends.holding  # not ended yet
    ended = [(pid, e) for pid, e in merged if not await holding(pid)]
    return [(entry_time(entry), pid, json.dumps(entry)) for pid, entry in ended]


def _body(items: Iterable[Raw], opening: str = "{", closing: str = "}") -> bytes:
    inner = ", ".join(f"{json.dumps(pid)}: {raw}" for _, pid, raw in items)
    return f"{opening}{inner}{closing}".encode()


def _in_order(kept: KeptHistory, others: list[Raw]) -> Iterator[Raw]:
    """Kept entries and the backends' others, oldest first; an entry removed
    while the answer is being written is left out."""
    extra = {pid: raw for _, pid, raw in others}
    keys = heapq.merge(kept.ordered(), ((at, -1, pid) for at, pid, _ in others))
    for at, seq, pid in keys:
        raw = extra.get(pid) if seq < 0 else kept.raw(pid)
        if raw is not None:
            yield at, pid, raw


async def _stream(
    request: web.Request, kept: KeptHistory, others: list[Raw], offset: int
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": f"{JSON}; charset=utf-8"})
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp
    chunk: list[Raw] = []
    opening = "{"
    for index, item in enumerate(_in_order(kept, others)):
        if index < offset:
            continue
        chunk.append(await present_raw(request, item))
        if len(chunk) == CHUNK:
            await resp.write(_body(chunk, opening, ""))
            chunk, opening = [], ", "
            await asyncio.sleep(0)  # let other requests in between chunks
    await resp.write(_body(chunk, opening) if chunk or opening == "{" else b"}")
    await resp.write_eof()
    return resp
