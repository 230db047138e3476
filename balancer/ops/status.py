"""GET /balancer/status: the pool and every backend as JSON (README: "Status").

Field names are a stable interface for tools; add fields, never rename them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from balancer.backends.state import Backend
from balancer.catalog.book import Catalogues
from balancer.catalog.residency import Residency
from balancer.jobs.events import JobEvent
from balancer.jobs.follow import Follower
from balancer.redact import display_url, redact

POOL_SUMS = (
    "queue_running",
    "queue_pending",
    "inflight",
    "vram_used",
    "vram_total",
    "jobs_done",
    "jobs_failed",
)


class JobTally:
    """Jobs done and failed per backend since start (a JobEvents observer)."""

    def __init__(self) -> None:
        self.done: dict[str, int] = defaultdict(int)
        self.failed: dict[str, int] = defaultdict(int)

    async def job_event(self, event: JobEvent) -> None:
        if event.backend is None:
            return
        if event.phase == "completed":
            self.done[event.backend] += 1
        elif event.phase == "failed":
            self.failed[event.backend] += 1


def backend_state(b: Backend) -> str:
    """One word: removed, down, draining or up (in that order of precedence)."""
    if "removed" in b.drain_reasons:
        return "removed"
    if not b.healthy:
        return "down"
    return "draining" if b.draining else "up"


async def running_prompt(b: Backend, follower: Follower) -> str | None:
    if b.snapshot is not None and b.snapshot.running:
        return b.snapshot.running[0]
    job = await follower.running_on(b.name)
    return job.prompt_id if job is not None else None


class Holdings:
    """What each backend offers and holds: its node count (from its
    catalogue; None before it is read) and the models taken as resident."""

    def __init__(self, catalogues: Catalogues, residency: Residency) -> None:
        self.catalogues = catalogues
        self.residency = residency

    def of(self, name: str) -> dict[str, Any]:
        catalogue = self.catalogues.get(name)
        return {
            "nodes": len(catalogue.classes) if catalogue is not None else None,
            "resident_models": self.residency.resident(name)[::-1],
        }


async def backend_status(
    b: Backend, now: float, tally: JobTally, follower: Follower, holdings: Holdings
) -> dict[str, Any]:
    snap = b.snapshot
    used = None
    if snap is not None and snap.vram_total is not None and snap.vram_free is not None:
        used = snap.vram_total - snap.vram_free
    return {
        "name": b.name,
        "url": display_url(b.url),  # never its user:password
        "state": backend_state(b),
        "drain_reasons": sorted(b.drain_reasons),
        "queue_running": len(snap.running) if snap else None,
        "queue_pending": len(snap.pending) if snap else None,
        "inflight": b.inflight,
        "vram_used": used,
        "vram_total": snap.vram_total if snap else None,
        "vram_limit": _limit_bytes(b),
        "last_probe_age_s": round(now - snap.taken_at, 3) if snap else None,
        "last_error": redact(b.last_error) if b.last_error else None,
        "jobs_done": tally.done.get(b.name, 0),
        "jobs_failed": tally.failed.get(b.name, 0),
        "running_prompt_id": await running_prompt(b, follower),
        **holdings.of(b.name),
    }


def _limit_bytes(b: Backend) -> int | None:
    limit, snap = b.settings.vram_limit, b.snapshot
    if limit is None or snap is None or snap.vram_total is None:
        return None
    return limit.bytes_of(snap.vram_total)


async def status_document(
    backends: list[Backend], now: float, tally: JobTally, follower: Follower, holdings: Holdings
) -> dict[str, Any]:
    rows = [await backend_status(b, now, tally, follower, holdings) for b in backends]
    pool: dict[str, Any] = {
        "backends": len(rows),
        "up": sum(1 for r in rows if r["state"] == "up"),
        "draining": sum(1 for r in rows if r["state"] in ("draining", "removed")),
        "down": sum(1 for r in rows if r["state"] == "down"),
    }
    for key in POOL_SUMS:
        pool[key] = sum(r[key] or 0 for r in rows)
    return {"pool": pool, "backends": rows}
