"""What a client key may see and touch, for the routes that span jobs:
its own queue items and history, interrupts of its own running jobs, and
clears that only clear its own."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer.auth.access import Visible, visible_ids
from balancer.auth.principal import principal_of
from balancer.state import Balancer


async def filter_queue(merged: dict[str, list[Any]], visible: Visible) -> dict[str, list[Any]]:
    """Keep the `[number, prompt_id, ...]` items the caller may see."""
    return {
        name: [i for i in items if isinstance(i, list) and len(i) > 1 and await visible(str(i[1]))]
        for name, items in merged.items()
    }


async def own_unfinished(b: Balancer, visible: Visible) -> list[tuple[str, str]]:
    """(prompt_id, backend) of the caller's dispatched, unfinished jobs."""
    return [
        (job.prompt_id, job.backend)
        for job in await b.store.unfinished_jobs()
        if job.backend is not None and await visible(job.prompt_id)
    ]


async def interrupt_own(b: Balancer, visible: Visible) -> None:
    """`POST /interrupt` without an id from a client key: each of its jobs is
    interrupted by id on its backend (ComfyUI ignores an id it is not running)."""
    for prompt_id, name in await own_unfinished(b, visible):
        backend = b.registry.get(name)
        if backend is not None:
            await b.each([backend], "POST", "/interrupt", {"prompt_id": prompt_id})


async def scoped_body(request: web.Request, b: Balancer, path: str, body: dict[str, Any]) -> Any:
    """A `/queue` or `/history` clear/delete narrowed to the caller's own ids
    (a clear becomes a delete of its own); None for a caller that sees all."""
    visible = visible_ids(request)
    if visible is None:
        return None
    delete = body.get("delete", [])
    ids = [str(i) for i in delete if await visible(str(i))] if isinstance(delete, list) else delete
    if body.get("clear"):
        ids = [*ids, *await _own_ids(b, path, visible)]
    return {"delete": ids}


async def _own_ids(b: Balancer, path: str, visible: Visible) -> list[str]:
    if path == "/queue":
        waiting = [j.prompt_id for j in list(b.jobs.queue) if await visible(j.prompt_id)]
        return waiting + [pid for pid, _ in await own_unfinished(b, visible)]
    kept = [pid for pid in list(await b.store.histories()) if await visible(pid)]
    pinned = [p.prompt_id for x in b.registry for p in await b.store.pins_of(x.name)]
    return kept + [pid for pid in pinned if await visible(pid) and not await _unfinished(b, pid)]


async def _unfinished(b: Balancer, prompt_id: str) -> bool:
    job = await b.store.get_job(prompt_id)
    return job is not None and not job.finished


def tenant_of(request: web.Request) -> str | None:
    return principal_of(request).tenant
