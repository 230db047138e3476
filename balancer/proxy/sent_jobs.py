"""What the event relay needs of a job this balancer sent, without a store
read for each event of its run.

A run's events (a few per node, two per sampler step) each need the job's
prompt_id, its client_id (whose sockets get them) and whether the backend
they came from is the job's own. With a shared store every store read is a
round trip, so the relay keeps, for the jobs this balancer sent, the backend
it sent each to and its client_id (neither changes while that run is the
job's own): written from the `dispatched` job event, dropped by the events
after which that backend's run is no longer the job's own (its end, a retry
elsewhere, a cancel, a refusal), and not used for a job this balancer no
longer follows (another replica adopted it).

The store stays the one owner of job state: this is what this balancer did,
and the relay reads the store whenever it has no entry for the job on that
backend (an event that came before the dispatch was recorded, a late run on
a backend the job was taken from, a job another replica or an earlier
process sent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from balancer.jobs.events import JobEvent

# After these a run on the backend the job was sent to is no longer its own.
LEFT = frozenset({"completed", "failed", "interrupted", "cancelled", "retried", "rejected"})
# Entries of jobs whose end this balancer never saw (adopted by another
# replica) are dropped when read; this bounds those never read again.
MAX_SENT = 100_000


@dataclass(frozen=True)
class RelayedJob:
    """A job as the relay needs it: whose, and on which backend."""

    prompt_id: str
    client_id: str | None
    backend: str | None
    finished: bool = False  # ended (as stored): its run's later frames come too late


class SentJobs:
    def __init__(self, follows: Callable[[str], bool]) -> None:
        self.follows = follows  # whether this balancer still follows the job
        self._sent: dict[str, RelayedJob] = {}

    async def job_event(self, event: JobEvent) -> None:
        if event.phase == "dispatched" and event.backend is not None:
            self._sent.pop(event.prompt_id, None)  # newest last, for the bound
            self._sent[event.prompt_id] = RelayedJob(
                event.prompt_id, event.client_id, event.backend
            )
            while len(self._sent) > MAX_SENT:
                del self._sent[next(iter(self._sent))]
        elif event.phase in LEFT:
            self._sent.pop(event.prompt_id, None)

    def on(self, backend: str, prompt_id: str) -> RelayedJob | None:
        """The job, if this balancer sent it to `backend` and follows it
        there still; None: ask the store."""
        job = self._sent.get(prompt_id)
        if job is None or job.backend != backend:
            return None
        if not self.follows(prompt_id):
            del self._sent[prompt_id]
            return None
        return job
