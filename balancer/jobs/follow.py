"""Following jobs on their backends: what a backend's channel and probes tell
becomes a transition of the job.

- `execution_start`: running.
- the end of a run (its end message, then `executing` with node null):
  before its client hears the first of those frames, the job is marked told
  in the store (`telling`): an end told is never told again (by a replica
  adopting the job, or after a restart), and the job never runs again. The
  backend's history entry is fetched once, shown as the client sees it,
  passed through the completing steps (for example copying outputs
  elsewhere), kept, and the job ends. Without a completing step the client
  is told the end first (`told`), as ComfyUI tells it once the entry is in
  its history: until the balancer keeps its copy, `/history/{id}` is the
  backend's, and a read of the job's record waits for it (`recorded`). A
  backend that has no entry for it lost it (a death): it is dispatched
  again, or, if its end was told, it ends as an error (its outputs lost).
- a probe that no longer shows a job in its backend's queue (the channel
  dropped mid-job): the same, and its client gets the end events it missed.
- a run on a backend the job was taken from (failover) that the backend
  still held: followed by the probes until it leaves that queue, then its
  history decides (its events may go to the channel of the balancer that
  sent it, before a restart). Its end is the job's end if it comes first,
  else a duplicate run.

A failed history fetch decides nothing: the job stays followed and the next
probe asks again (running a finished job again would be worse than ending
it a probe later).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock, LoadSnapshot
from balancer.jobs.completing import CompletingStep
from balancer.jobs.dispatch import display_number
from balancer.jobs.events import JobEvent
from balancer.jobs.followed import Followed
from balancer.jobs.held import HeldEnds
from balancer.jobs.lateruns import LateRuns
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.routing import Routing
from balancer.logs import get_logger
from balancer.store import StoredJob
from balancer.upstream import Upstream, UpstreamError

log = get_logger("balancer.jobs")
# (backend name, the job as stored, raw history entry) -> the entry as clients see it
Present = Callable[[str, StoredJob, Any], Any]


class Follower:
    def __init__(
        self,
        registry: Registry,
        jobs: Jobs,
        routing: Routing,
        upstream: Upstream,
        present: Present,
        completing: CompletingStep | None,
        clock: Clock,
        late: LateRuns,
        only_own: bool,
    ) -> None:
        self.registry = registry
        self.jobs = jobs
        self.store = jobs.store
        self.routing = routing
        self.upstream = upstream
        self.present = present
        # Holds a job's end (e.g. until its outputs are stored): the end then
        # runs in the background, so channels go on relaying other events.
        self.completing = completing
        self.held = HeldEnds()
        # Jobs whose end this balancer marked told (Jobs.told: never told
        # twice), and the ends being recorded now.
        self._told: set[str] = set()
        self._recording: dict[str, asyncio.Event] = {}
        self.clock = clock
        self._sent_at: dict[str, float] = {}  # monotonic; a probe compares with it
        # Where each followed job was sent (or found, adopted): what work
        # stealing among replicas looks through (it moves only these), and
        # what `holds` tells the prober.
        self._sent_to = Followed()
        # Of those, the ones whose run there started (stealing skips them).
        self._started: set[str] = set()
        # Runs of jobs taken from a backend that it may still end (shared
        # with the binder), and per backend the ids in its queue the store
        # does not know (not looked up again).
        self.late = late
        self._unknown: dict[str, set[str]] = {}
        self._reading: set[tuple[str, str]] = set()  # (backend, prompt_id) ends being read
        # Other replicas send jobs through the same store: a probe here
        # reconciles only the jobs this replica sent (another's job just sent
        # may be missing from a probe that left before it arrived).
        self.only_own = only_own
        jobs.events.subscribe(self)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase == "dispatched":
            self._sent_at[event.prompt_id] = self.clock()
            if event.backend is not None:  # a run there is followed as its own now
                self._sent_to.sent(event.prompt_id, event.backend)
                self.late.discard(event.backend, event.prompt_id)
            self._started.discard(event.prompt_id)
        elif event.phase == "running":
            self._started.add(event.prompt_id)
        elif event.phase in ("completed", "failed", "interrupted", "cancelled", "retried"):
            self._sent_at.pop(event.prompt_id, None)
            self._told.discard(event.prompt_id)
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
        events go to the channels of the process before, so only probes
        find their ends)."""
        for job in await self.store.jobs():
            self.late.taken_from(job)
            if job.backend is not None and job.state in ("queued", "running"):
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

    async def ended(self, backend: str, prompt_id: str, replay: bool) -> StoredJob | None:
        """A run of `prompt_id` ended on `backend` (its channel or a probe
        says so). Read once: a report while that run's end is being read is
        the same run (its channel and a probe both told of it)."""
        if (backend, prompt_id) in self._reading:
            return None
        self._reading.add((backend, prompt_id))
        try:
            return await self._read_end(backend, prompt_id, replay)
        finally:
            self._reading.discard((backend, prompt_id))

    async def _read_end(self, backend: str, prompt_id: str, replay: bool) -> StoredJob | None:
        job = await self.store.get_job(prompt_id)
        owner = self.registry.get(backend)
        if job is None or owner is None or not self.jobs.is_run_of(job, backend):
            self.late.discard(backend, prompt_id)  # no run of it there to read
            return None
        try:
            answer = await self.upstream.get_json(f"{owner.url}/history/{prompt_id}")
        except UpstreamError:  # its probes ask again once it left that queue
            self.late.add(backend, prompt_id)
            return None
        raw = answer.get(prompt_id) if isinstance(answer, dict) else None
        if raw is None:  # neither queued nor kept by its backend: lost
            self.late.discard(backend, prompt_id)
            now = await self.store.get_job(prompt_id)  # unless it moved on while we asked
            if now is not None and now.backend == backend:
                reason = f"{backend} no longer has it"
                await self.jobs.lost(prompt_id, reason, self.routing.settings.max_attempts)
            return None
        entry = with_number(self.present(backend, job, raw), job.number)
        if self.completing is not None:
            entry = await self._complete(self.completing, prompt_id, owner.url, entry)
        ended = await self.jobs.ended(prompt_id, backend, entry, replay)
        if ended is not None:  # this run's end is read: never a second time
            self.late.discard(backend, prompt_id)
        return ended

    async def telling(self, backend: str, prompt_id: str) -> bool:
        """Its client is about to hear the end of its run on `backend`:
        marked told first, once per run. False: not to be told (it ended
        already, its end replayed, or it moved on)."""
        if prompt_id not in self._told:
            if await self.jobs.told(prompt_id, backend) is None:
                return False
            self._told.add(prompt_id)
        return True

    async def told(self, backend: str, prompt_id: str) -> None:
        """The end of a run on `backend` that its client was already told of
        (`telling`): recorded as `ended` does, and a reader of the job waits for it."""
        recording = self._recording[prompt_id] = asyncio.Event()
        try:
            await self.ended(backend, prompt_id, replay=False)
        finally:
            recording.set()
            if self._recording.get(prompt_id) is recording:
                del self._recording[prompt_id]

    async def recorded(self, prompt_ids: Collection[str] | None, timeout: float) -> None:
        """Once the ends of these jobs (None: of every job) their clients
        were told are recorded, at most `timeout` seconds: a backend that
        does not answer leaves the job as it is stored."""
        waits = [
            asyncio.ensure_future(recording.wait())
            for prompt_id, recording in self._recording.items()
            if prompt_ids is None or prompt_id in prompt_ids
        ]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for wait in pending:
                wait.cancel()

    async def _complete(self, step: CompletingStep, prompt_id: str, url: str, entry: Any) -> Any:
        """The completing step's entry; if the step itself breaks, the job
        still ends, with the entry as its backend gave it."""
        try:
            return await step.complete(prompt_id, url, entry)
        except Exception:
            log.exception("completing_step_failed", prompt_id=prompt_id)
            return entry

    async def reconcile(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Jobs sent to `backend` before this probe left that its queue no
        longer holds ended while nobody was told: end them from history."""
        present = set(snapshot.running) | set(snapshot.pending)
        jobs = await self.store.jobs_on(backend.name)
        for job in jobs:
            if self.only_own and job.prompt_id not in self._sent_at:
                continue
            sent = self._sent_at.get(job.prompt_id, -math.inf)
            gone = job.prompt_id not in present and sent < snapshot.taken_at
            if not gone or job.state not in ("queued", "running"):
                continue
            await self._end(backend.name, job.prompt_id)
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
                await self._end(backend, prompt_id)

    async def _end(self, backend: str, prompt_id: str) -> None:
        """End a run the channel did not tell of, with the end events replayed."""
        ending = self.ended(backend, prompt_id, replay=prompt_id not in self._told)
        if self.completing is not None:
            self.hold(prompt_id, ending)
        else:
            await ending

    def hold(self, prompt_id: str, ending: Coroutine[Any, Any, Any]) -> None:
        """Run a job's end in the background, once at a time per job."""
        self.held.hold(prompt_id, ending)

    async def holding(self, prompt_id: str) -> bool:
        """Whether this job's end is held back: with a completing step, a job
        the balancer has not ended (its outputs being stored, or not yet
        reconciled after a restart) shows no history, like a running one."""
        if self.completing is None:
            return False
        job = await self.store.get_job(prompt_id)
        return prompt_id in self.held or (job is not None and not job.finished)

    async def close(self) -> None:
        """Shutdown: ends still held are dropped (see HeldEnds)."""
        await self.held.close()

    async def running_on(self, backend: str) -> StoredJob | None:
        """The job a backend is executing now, as far as its events tell."""
        return next((j for j in await self.store.jobs_on(backend) if j.state == "running"), None)


def with_number(entry: Any, number: float) -> Any:
    """A history entry showing the pool's `number` (the backend has its own)."""
    prompt = entry.get("prompt") if isinstance(entry, dict) else None
    if not isinstance(prompt, list) or not prompt:
        return entry
    return {**entry, "prompt": [display_number(number), *prompt[1:]]}
