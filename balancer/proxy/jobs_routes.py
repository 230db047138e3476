"""The jobs API (`/api/jobs*`), answered by the balancer from its own records
for every backend version: the list, one job, and cancel."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer.auth.access import may_see, visible_ids
from balancer.outputs.setup import present
from balancer.proxy.context import ctx, read_json_object
from balancer.proxy.job_view import API_STATUS, job_detail, job_summary

SORT_KEYS = {"created_at": "create_time", "execution_duration": "duration"}


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _count(request: web.Request, name: str, low: int) -> int | web.Response | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return _bad(f"{name} must be an integer")
    return value if value >= low else _bad(f"{name} must be >= {low}")


def _duration(item: dict[str, Any]) -> int:
    return int(item.get("execution_end_time", 0)) - int(item.get("execution_start_time", 0))


async def list_jobs(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    wanted = {s for s in request.query.get("status", "").split(",") if s}
    if wanted - set(API_STATUS.values()):
        return _bad(f"unknown status: {sorted(wanted - set(API_STATUS.values()))}")
    sort_by = request.query.get("sort_by", "created_at")
    order = request.query.get("sort_order", "desc")
    if sort_by not in SORT_KEYS or order not in ("asc", "desc"):
        return _bad("sort_by must be created_at or execution_duration, sort_order asc or desc")
    limit, offset = _count(request, "limit", 1), _count(request, "offset", 0)
    for value in (limit, offset):
        if isinstance(value, web.Response):
            return value
    visible = visible_ids(request)
    items = [
        job_summary(job, await present(request, await b.store.get_history(job.prompt_id)))
        for job in await b.store.jobs()
        if visible is None or await visible(job.prompt_id)
    ]
    workflow_id = request.query.get("workflow_id")
    items = [
        i
        for i in items
        if (not wanted or i["status"] in wanted)
        and (workflow_id is None or i.get("workflow_id") == workflow_id)
    ]
    key = _duration if sort_by == "execution_duration" else lambda i: int(i["create_time"])
    items.sort(key=key, reverse=order == "desc")
    start = offset if isinstance(offset, int) else 0
    page = items[start : start + limit] if isinstance(limit, int) else items[start:]
    pagination = {
        "offset": start,
        "limit": limit,
        "total": len(items),
        "has_more": start + len(page) < len(items),
    }
    return web.json_response({"jobs": page, "pagination": pagination})


async def get_job(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    job_id = request.match_info["job_id"]
    if not await may_see(request, job_id):
        return web.json_response({"error": "Job not found"}, status=404)
    await b.follower.ends.recorded({job_id}, b.settings.probe.timeout)  # told done: shown done
    job = await b.store.get_job(job_id)
    if job is None:
        return web.json_response({"error": "Job not found"}, status=404)
    kept = await b.store.get_history(job_id)
    entry = await present(request, kept) if kept is not None else None  # fresh signed URLs
    return web.json_response(job_detail(job, entry))


async def cancel_job(request: web.Request) -> web.StreamResponse:
    """Dropped from the balancer queue, or from its backend's queue, or its
    run interrupted; a finished or unknown id is a no-op with false."""
    b = ctx(request)
    job_id = request.match_info["job_id"]
    if not await may_see(request, job_id):
        return web.json_response({"cancelled": False})
    return web.json_response({"cancelled": await b.canceller.cancel(job_id)})


async def cancel_jobs(request: web.Request) -> web.StreamResponse:
    """`POST /api/jobs/cancel {"job_ids": [...]}`: true if any was cancelled."""
    b = ctx(request)
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    ids = body.get("job_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return _bad("invalid_ids: job_ids must be a list of job ids")
    done = [await b.canceller.cancel(i) for i in ids if await may_see(request, i)]
    return web.json_response({"cancelled": any(done)})
