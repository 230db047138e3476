"""Which runs of a job an end is news of, and a later run's end recorded on
the job as a duplicate: helpers of the end of a run (`Jobs.ended`,
lifecycle.py), part of the one writer of job state, as its move is (moves.py).
"""

from __future__ import annotations

from balancer.jobs.moves import JobMoves
from balancer.jobs.telling import tell
from balancer.store import StoredJob


class JobRuns(JobMoves):
    """The runs of a job its transitions (lifecycle.Jobs) tell apart."""

    @staticmethod
    def is_run_of(job: StoredJob, backend: str) -> bool:
        """Whether an end on `backend` is news: a run this job had there and
        whose end was not recorded yet."""
        if backend in job.duplicates:
            return False
        if job.finished:  # a backend it was lost from ran it, unless that run is the end
            return backend in job.lost_from and backend != job.backend
        return backend == job.backend or backend in job.lost_from

    async def _duplicate(self, job: StoredJob, backend: str) -> StoredJob | None:
        dups = (*job.duplicates, backend)
        moved = await self.store.transition(
            job.prompt_id, (job.state,), job.state, {"duplicates": dups}
        )
        if moved is not None:
            await tell(self.events, moved, "duplicated", "a second run ended", backend=backend)
        return moved
