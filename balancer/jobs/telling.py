"""What a job's move tells: one structlog line and one job event, both
made from the job as stored after the move (lifecycle.py makes every move)."""

from __future__ import annotations

from typing import Any

from balancer.catalog.needs import needs_of
from balancer.catalog.residency import main_model
from balancer.jobs.events import ClientEvents, JobEvent, JobEvents, Phase
from balancer.logs import get_logger
from balancer.store import StoredJob

log = get_logger("balancer.jobs")


async def tell(
    events: JobEvents,
    job: StoredJob,
    phase: Phase,
    detail: str | None,
    client_events: ClientEvents = (),
    backend: str | None = None,
    entry: Any = None,
) -> None:
    """Log `phase` for `job` and emit its event (`backend`: where the run
    it is about ran, when that is not the job's backend; `entry`: the
    history entry the move kept, if it kept one)."""
    wait, run = _times(job)
    model = main_model(needs_of(job.request.get("prompt")))
    level = log.warning if phase in ("failed", "retried", "duplicated") else log.info
    backend = backend or job.backend
    level(
        phase,
        prompt_id=job.prompt_id,
        backend=backend,
        state=job.state,
        **({"model": model} if model else {}),
        **({"detail": detail} if detail else {}),
        **({"queue_wait_s": round(wait, 4)} if wait is not None else {}),
        **({"run_s": round(run, 4)} if run is not None else {}),
    )
    event = JobEvent(
        job.prompt_id,
        phase,
        backend,
        queue_wait=wait,
        run_time=run,
        detail=detail,
        client_id=job.client_id,
        client_events=client_events,
        model=model,
        taken_from=_taken_from(job),
        tenant=job.tenant,
        entry=entry,
    )
    await events.emit(event)


def _times(job: StoredJob) -> tuple[float | None, float | None]:
    wait = None if job.started_at is None else max(0.0, job.started_at - job.submitted_at)
    run = (
        None
        if job.started_at is None or job.ended_at is None or not job.finished
        else max(0.0, job.ended_at - job.started_at)
    )
    return wait, run


def _taken_from(job: StoredJob) -> str | None:
    """The backend failover last took `job` from, unless it is back there."""
    last = job.lost_from[-1] if job.lost_from else None
    return last if last != job.backend else None
