"""Job tracking: channel events move each job through its states; on its end
the balancer fetches the backend's history entry once and keeps it, so
`/history/{id}` answers even after that backend restarts.

Events can be lost (a channel drops mid-job), so a probe that no longer shows
a dispatched job in its backend's queue also finishes it from history.
"""

from __future__ import annotations

from typing import Any

from balancer.backends.state import Clock, LoadSnapshot
from balancer.jobs.events import JobEvent, JobEvents
from balancer.jobs.model import Job, JobState, end_state
from balancer.logs import get_logger
from balancer.store import Store

log = get_logger("balancer.jobs")


class Tracker:
    def __init__(self, store: Store, events: JobEvents, clock: Clock) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.jobs: dict[str, Job] = {}

    def dispatched(
        self, prompt_id: str, backend: str, client_id: str | None, submitted_at: float
    ) -> Job:
        job = Job(prompt_id, backend, client_id, submitted_at, self.clock())
        self.jobs[prompt_id] = job
        return job

    def running_on(self, backend: str) -> Job | None:
        """The job a backend is executing now, as far as its events tell."""
        for job in self.jobs.values():
            if job.backend == backend and job.state is JobState.RUNNING:
                return job
        return None

    def unfinished_of(self, client_id: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.client_id == client_id and not j.state.finished]

    def started(self, prompt_id: str) -> Job | None:
        job = self.jobs.get(prompt_id)
        if job is None or job.state is not JobState.DISPATCHED:
            return job
        job.state = JobState.RUNNING
        job.started_at = self.clock()
        log.info(
            "running", prompt_id=prompt_id, backend=job.backend, queue_wait_s=_r(job.queue_wait)
        )
        self.events.emit(JobEvent(prompt_id, "running", job.backend, queue_wait=job.queue_wait))
        return job

    def finish(self, prompt_id: str, entry: Any | None) -> Job | None:
        """End a job from its history entry (None: the backend has no entry)."""
        job = self.jobs.get(prompt_id)
        if job is None or job.state.finished:
            return job
        now = self.clock()
        if job.started_at is None:
            job.started_at = now
        job.finished_at = now
        job.state = end_state(entry) if entry is not None else JobState.FAILED
        if entry is not None:
            self.store.put_history(prompt_id, entry)
        self.store.remove_job(prompt_id)
        phase = {JobState.DONE: "completed", JobState.INTERRUPTED: "interrupted"}.get(
            job.state, "failed"
        )
        log.info(
            phase,
            prompt_id=prompt_id,
            backend=job.backend,
            queue_wait_s=_r(job.queue_wait),
            run_s=_r(job.run_time),
        )
        self.events.emit(
            JobEvent(
                prompt_id,
                phase,  # type: ignore[arg-type]
                job.backend,
                queue_wait=job.queue_wait,
                run_time=job.run_time,
            )
        )
        self.jobs.pop(prompt_id, None)
        return job

    def lost_from(self, backend: str, snapshot: LoadSnapshot) -> list[Job]:
        """Jobs dispatched to `backend` before this probe left that its queue
        no longer holds: they ended while we were not told."""
        present = set(snapshot.running) | set(snapshot.pending)
        return [
            job
            for job in self.jobs.values()
            if job.backend == backend
            and not job.state.finished
            and job.dispatched_at < snapshot.taken_at
            and job.prompt_id not in present
        ]


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
