"""What a job's move tells: one structlog line and one job event, both
made from the job as stored after the move (lifecycle.py makes every move)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from balancer.catalog.needs import needs_of
from balancer.catalog.residency import main_model
from balancer.jobs.events import ClientEvents, JobEvent, JobEvents, Phase
from balancer.logs import get_logger
from balancer.store import StoredJob
from balancer.store.outbox import Owed

log = get_logger("balancer.jobs")


async def tell(
    events: JobEvents,
    job: StoredJob,
    phase: Phase,
    detail: str | None,
    client_events: ClientEvents = (),
    backend: str | None = None,
    entry: Any = None,
    owed: Owed | None = None,
) -> None:
    """Log `phase` for `job` and emit its event (`backend`: where the run
    it is about ran, when that is not the job's backend; `entry`: the
    history entry the move kept, if it kept one; `owed`: the webhook it
    put in the outbox)."""
    event = replace(
        event_of(job, phase, detail, entry),
        backend=backend or job.backend,
        client_events=client_events,
        owed=owed,
    )
    level = log.warning if phase in ("failed", "retried", "duplicated") else log.info
    level(
        phase,
        prompt_id=job.prompt_id,
        backend=event.backend,
        state=job.state,
        **({"model": event.model} if event.model else {}),
        **({"detail": detail} if detail else {}),
        **({"queue_wait_s": round(event.queue_wait, 4)} if event.queue_wait is not None else {}),
        **({"run_s": round(event.run_time, 4)} if event.run_time is not None else {}),
    )
    await events.emit(event)


def event_of(job: StoredJob, phase: Phase, detail: str | None, entry: Any = None) -> JobEvent:
    """The event of `phase` for `job` as stored after its move (the run it
    is about on the job's backend, nothing for its client)."""
    wait, run = _times(job)
    return JobEvent(
        job.prompt_id,
        phase,
        job.backend,
        queue_wait=wait,
        run_time=run,
        detail=detail,
        client_id=job.client_id,
        model=main_model(needs_of(job.request.get("prompt"))),
        taken_from=_taken_from(job),
        tenant=job.tenant,
        entry=entry,
    )


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
