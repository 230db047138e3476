"""Job phases as events: logs, metrics and later webhooks observe them here
instead of being called from every place a job moves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from balancer.logs import get_logger
from balancer.store.model import StoredJob, StoreUnavailable
from balancer.store.outbox import Owed

log = get_logger("balancer.jobs")

Phase = Literal[
    "submitted",
    "queued",
    "dispatched",
    "rejected",
    "running",
    "completed",
    "failed",
    "interrupted",
    "retried",
    "cancelled",
    "duplicated",
]

# A run left the backend it was on: it ended there, or was taken off it.
LEFT_BACKEND: frozenset[Phase] = frozenset(
    {"completed", "failed", "interrupted", "cancelled", "retried"}
)

# Messages the balancer makes for a job's client: (type, data), in order.
ClientEvents = tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class JobEvent:
    prompt_id: str
    phase: Phase
    backend: str | None = None
    # seconds: submit -> start (queue wait) and start -> end (run time), when known
    queue_wait: float | None = None
    run_time: float | None = None
    detail: str | None = None
    # The job's own client_id, and events the balancer makes for its client
    # (a late failure, or the end of a run whose channel events were lost).
    client_id: str | None = None
    client_events: ClientEvents = ()
    # The prompt's main checkpoint or UNet, for per-model figures.
    model: str | None = None
    # The backend failover last took this job from, when it is not the job's
    # backend now: that backend may still hold a run of it.
    taken_from: str | None = None
    # The API key (by name) that submitted the job, as stored.
    tenant: str | None = None
    # The history entry this move kept (its end), so observers need not read
    # it back from the store; None: read it there if needed.
    entry: Any = None
    # The webhook this move (an end) put in the outbox, in the same step.
    owed: Owed | None = None


class Owing(Protocol):
    """What a job's end owes its client besides its events: a webhook."""

    def owed(self, ended: StoredJob, phase: Phase, detail: str | None, entry: Any) -> Owed | None:
        """The webhook the end `phase` owes, if any: `ended` is the job as
        its move (not stored yet) will store it, `entry` the history entry
        it keeps. The move writes it to the outbox."""
        ...


class JobObserver(Protocol):
    async def job_event(self, event: JobEvent) -> None: ...


class JobEvents:
    """Fan one event out to every observer, in turn; an observer raises
    nothing but StoreUnavailable. The job's next move waits for every
    observer (an observer may read the store), so observers see a job's
    events in order."""

    def __init__(self) -> None:
        self._observers: list[JobObserver] = []

    def subscribe(self, observer: JobObserver) -> None:
        self._observers.append(observer)

    async def emit(self, event: JobEvent) -> None:
        """The move is already stored: an observer that cannot read the
        store misses this event (logged), the others still get it."""
        for observer in self._observers:
            try:
                await observer.job_event(event)
            except StoreUnavailable as exc:
                log.warning(
                    "job_event_unobserved",
                    prompt_id=event.prompt_id,
                    phase=event.phase,
                    observer=type(observer).__name__,
                    error=str(exc),
                )
