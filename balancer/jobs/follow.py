"""Following jobs on their backends: what a backend's channel and probes tell
becomes a transition of the job.

- `execution_start`: running.
- the end of a run: read and recorded once (ends.py).
- a probe that no longer shows a job in its backend's queue (the channel
  dropped mid-job): the same, and its client gets the end events it missed.
- a run on a backend the job was taken from (failover) that the backend
  still held: followed by the probes until it leaves that queue, then its
  history decides (its events may go to the channel of the balancer that
  sent it, before a restart). Its end is the job's end if it comes first,
  else a duplicate run.
"""

from __future__ import annotations

import math

from balancer.backends.state import Backend, Clock, LoadSnapshot
from balancer.jobs.ends import RunEnds
from balancer.jobs.events import LEFT_BACKEND, JobEvent
from balancer.jobs.followed import Followed
from balancer.store import StoredJob


class Follower:
    def __init__(self, ends: RunEnds, clock: Clock, only_own: bool) -> None:
        self.ends = ends  # reads and records the end of each run it reports
        self.jobs = ends.jobs
        self.store = ends.store
        # Runs of jobs taken from a backend that it may still end (shared
        # with the binder).
        self.late = ends.late
        self.clock = clock
        self._sent_at: dict[str, float] = {}  # monotonic; a probe compares with it
        # Where each followed job was sent (or found, adopted): what work
        # stealing among replicas looks through (it moves only these), and
        # what `holds` tells the prober.
        self._sent_to = Followed()
        # Of those, the ones whose run there started (stealing skips them).
        self._started: set[str] = set()
        # Per backend the ids in its queue the store does not know (not
        # looked up again).
        self._unknown: dict[str, set[str]] = {}
        # Other replicas send jobs through the same store: this replica
        # fails over and steals only the jobs it sent or adopted (a probe
        # reconciles only those, alone or not: see `reconcile`).
        self.only_own = only_own
        self.jobs.events.subscribe(self)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase == "dispatched":
            self._sent_at[event.prompt_id] = self.clock()
            if event.backend is not None:  # a run there is followed as its own now
                self._sent_to.sent(event.prompt_id, event.backend)
                self.late.discard(event.backend, event.prompt_id)
            self._started.discard(event.prompt_id)
        elif event.phase == "running":
            self._started.add(event.prompt_id)
        elif event.phase in LEFT_BACKEND:
            self._sent_at.pop(event.prompt_id, None)
            self._sent_to.left(event.prompt_id)
            self._started.discard(event.prompt_id)
        if event.phase in ("retried", "completed", "failed", "interrupted") and event.taken_from:
            # Taken from a backend, or ended by an earlier run elsewhere
            # while a backend held it: that backend may still run it.
            self.late.add(event.taken_from, event.prompt_id)

    def copies(self, job: StoredJob) -> list[str]:
        """Backends the job was taken from that may still hold a run of it
        (their probes have not seen it leave yet)."""
        return [b for b in self.late.backends(job.prompt_id) if b != job.backend]

    def copy_gone(self, backend: str, prompt_id: str) -> None:
        """`backend` confirmed it holds no run of this job."""
        self.late.discard(backend, prompt_id)

    def adopt(self, jobs: list[StoredJob]) -> None:
        """Follow these jobs as if this replica had sent them (another
        replica's death): probes reconcile them, and the runs they may
        still have where they were taken from."""
        for job in jobs:
            self._sent_at.setdefault(job.prompt_id, -math.inf)
            if job.backend is not None:
                self._sent_to.found(job.prompt_id, job.backend)
            self.late.taken_from(job)

    async def restore(self) -> None:
        """After a restart: the runs every kept job (ended ones too) may
        still have where it was taken from, and the jobs on backends (their
        events go to the channel ids of the process before, which the
        restarted balancer takes over: takeover.py)."""
        for job in await self.store.jobs():
            self.late.taken_from(job)
            if job.backend is not None and job.state in ("queued", "running"):
                self._sent_at.setdefault(job.prompt_id, -math.inf)
                self._sent_to.found(job.prompt_id, job.backend)

    def follows(self, prompt_id: str) -> bool:
        """Whether this balancer decides this job's fate on its backend
        (alone, every job; one of several replicas, those it sent or adopted)."""
        return not self.only_own or prompt_id in self._sent_at

    def may_wait_on(self, backend: str) -> bool:
        """Whether a job this balancer follows may wait on `backend` behind
        another (alone: any job; one of several replicas: one it sent or
        adopted there and has not seen start)."""
        if not self.only_own:
            return True
        return any(p not in self._started for p in self._sent_to.on(backend))

    def holds(self, backend: str) -> bool:
        """Whether `backend` holds a job this balancer follows there, or may
        hold a run of a job taken from it: its queue is read until it does
        not, whatever its pushes say."""
        return bool(self._sent_to.on(backend)) or self.late.holds(backend)

    def forget_all(self) -> None:
        """Another replica follows every job this one did (its lease was lost)."""
        self._sent_at.clear()
        self._sent_to.clear()
        self._started.clear()
        self.late.clear()

    async def started(self, backend: Backend, prompt_id: str) -> None:
        """`backend`, the job's own (the relay checked), started its run."""
        await self.jobs.started(prompt_id, backend.name)

    async def reconcile(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Jobs sent to `backend` before this probe left that its queue no
        longer holds ended while nobody was told: end them from history.
        Only jobs whose send this balancer recorded (`dispatched`), or took
        over (a restart, an adoption): the store holds a job queued on its
        backend as soon as that move is made, before its sender hears the
        store's answer, and a probe that left before the prompt reached its
        backend, read meanwhile, would take it for lost and send it again
        (it would run twice). Such a job is judged by the next probe."""
        present = set(snapshot.running) | set(snapshot.pending)
        jobs = await self.store.jobs_on(backend.name)
        for job in jobs:
            sent = self._sent_at.get(job.prompt_id)
            if sent is None:  # another replica's, or its send is being recorded
                continue
            gone = job.prompt_id not in present and sent < snapshot.taken_at
            if not gone or job.state not in ("queued", "running"):
                continue
            await self.end_untold(backend.name, job.prompt_id)
        await self._late_runs(backend.name, present, {job.prompt_id for job in jobs})

    async def _late_runs(self, backend: str, present: set[str], owned: set[str]) -> None:
        """Runs of jobs taken from `backend` (noted when taken, or found in
        its queue among what it holds for jobs not `owned` by it) are ended
        from its history once they leave its queue."""
        late = self.late.on(backend)
        others = present - owned
        unknown = self._unknown.get(backend, set()) & others
        for prompt_id in others - late - unknown:
            job = await self.store.get_job(prompt_id)
            if job is None:
                unknown.add(prompt_id)
            elif self.jobs.is_run_of(job, backend):
                late.add(prompt_id)
        self._unknown[backend] = unknown
        for prompt_id in late - present:
            if prompt_id in owned:  # sent back to it: followed as its own
                late.discard(prompt_id)
            else:  # still noted (not sent there) until its end there is read
                await self.end_untold(backend, prompt_id)

    async def end_untold(self, backend: str, prompt_id: str) -> None:
        """End a run whose end frames were not relayed (a probe found it
        gone, or a channel taken over brought only its last), from its
        backend's history, with what its client missed replayed."""
        ends = self.ends
        ending = ends.ended(backend, prompt_id, replay=not ends.was_told(prompt_id))
        if ends.completing is not None:
            ends.hold(prompt_id, ending)
        else:
            await ending

    async def running_on(self, backend: str) -> StoredJob | None:
        """The job a backend is executing now, as far as its events tell."""
        return next((j for j in await self.store.jobs_on(backend) if j.state == "running"), None)
