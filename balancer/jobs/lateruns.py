"""Runs a backend may still hold of jobs it no longer owns.

Failover takes a job from a backend that stopped answering, and a send that
broke after the request left may or may not have reached its backend: either
way that backend may still queue, run or have finished a run of the job. The
probes follow such a run until it leaves that backend's queue, then read its
end (follow.py). Until then the job is not sent to that backend again (it
would be a second copy on the same GPU) unless the backend's last probe shows
it holds the job, which is then followed there (late.py, dispatch.py).
"""

from __future__ import annotations

from balancer.backends.state import Backend
from balancer.store import StoredJob


class LateRuns:
    def __init__(self) -> None:
        self._on: dict[str, set[str]] = {}

    def add(self, backend: str, prompt_id: str) -> None:
        self._on.setdefault(backend, set()).add(prompt_id)

    def taken_from(self, job: StoredJob) -> None:
        """At start, or adopting it: every backend the job was taken from
        (but is not back on, and whose run of it was not read) may still
        hold a run of it, or have ended one while no balancer listened (what
        the last one noted went with it), as the store says."""
        for backend in set(job.lost_from) - {job.backend, *job.duplicates}:
            self.add(backend, job.prompt_id)

    def discard(self, backend: str, prompt_id: str) -> None:
        self._on.get(backend, set()).discard(prompt_id)

    def on(self, backend: str) -> set[str]:
        """The jobs `backend` may still hold a run of (the set itself)."""
        return self._on.setdefault(backend, set())

    def holds(self, backend: str) -> bool:
        """Whether `backend` may still hold a run of a job taken from it."""
        return bool(self._on.get(backend))

    def backends(self, prompt_id: str) -> list[str]:
        """The backends that may still hold a run of this job."""
        return [b for b, ids in self._on.items() if prompt_id in ids]

    def clear(self) -> None:
        """Another replica follows every job this one did."""
        self._on.clear()


def still_holds(job: StoredJob, backend: Backend) -> bool:
    """Whether `backend`, which the job was taken from (past the failover
    grace), still showed it queued or running at its last probe."""
    snap = backend.snapshot
    held = snap is not None and job.prompt_id in (*snap.running, *snap.pending)
    return held and backend.name in job.lost_from
