"""What a client key may see and touch, for the routes that span jobs:
its own queue items and history, interrupts of its own running jobs, and
clears that only clear its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from balancer.auth.access import visible_ids
from balancer.auth.principal import principal_of
from balancer.state import Balancer

Visible = Callable[[str], bool]


def filter_queue(merged: dict[str, list[Any]], visible: Visible) -> dict[str, list[Any]]:
    """Keep the `[number, prompt_id, ...]` items the caller may see."""
    return {
        name: [i for i in items if isinstance(i, list) and len(i) > 1 and visible(str(i[1]))]
        for name, items in merged.items()
    }


def own_unfinished(b: Balancer, visible: Visible) -> list[tuple[str, str]]:
    """(prompt_id, backend) of the caller's dispatched, unfinished jobs."""
    return [
        (job.prompt_id, job.backend)
        for job in b.store.unfinished_jobs()
        if job.backend is not None and visible(job.prompt_id)
    ]


async def interrupt_own(b: Balancer, visible: Visible) -> None:
    """`POST /interrupt` without an id from a client key: each of its jobs is
    interrupted by id on its backend (ComfyUI ignores an id it is not running)."""
    for prompt_id, name in own_unfinished(b, visible):
        backend = b.registry.get(name)
        if backend is not None:
            await b.each([backend], "POST", "/interrupt", {"prompt_id": prompt_id})


def scoped_body(request: web.Request, b: Balancer, path: str, body: dict[str, Any]) -> Any:
    """A `/queue` or `/history` clear/delete narrowed to the caller's own ids
    (a clear becomes a delete of its own); None for a caller that sees all."""
    visible = visible_ids(request)
    if visible is None:
        return None
    delete = body.get("delete", [])
    ids = [str(i) for i in delete if visible(str(i))] if isinstance(delete, list) else delete
    if body.get("clear"):
        ids = [*ids, *_own_ids(b, path, visible)]
    return {"delete": ids}


def _own_ids(b: Balancer, path: str, visible: Visible) -> list[str]:
    if path == "/queue":
        waiting = [j.prompt_id for j in b.jobs.queue if visible(j.prompt_id)]
        return waiting + [pid for pid, _ in own_unfinished(b, visible)]
    kept = [pid for pid in b.store.histories() if visible(pid)]
    pinned = [p.prompt_id for x in b.registry for p in b.store.pins_of(x.name)]
    return kept + [pid for pid in pinned if visible(pid) and not _unfinished(b, pid)]


def _unfinished(b: Balancer, prompt_id: str) -> bool:
    job = b.store.get_job(prompt_id)
    return job is not None and not job.finished


def tenant_of(request: web.Request) -> str | None:
    return principal_of(request).tenant
