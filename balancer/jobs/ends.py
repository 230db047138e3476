"""The end of a run, read from its backend once and told once.

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

A failed history fetch decides nothing: the job stays followed and the next
probe asks again (running a finished job again would be worse than ending
it a probe later).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from balancer.backends.registry import Registry
from balancer.jobs.completing import CompletingStep
from balancer.jobs.events import LEFT_BACKEND, JobEvent
from balancer.jobs.held import HeldEnds
from balancer.jobs.lateruns import LateRuns
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.numbers import with_number
from balancer.jobs.routing import Routing
from balancer.logs import get_logger
from balancer.store import StoredJob
from balancer.upstream import Upstream, UpstreamError

log = get_logger("balancer.jobs")
# (backend name, the job as stored, raw history entry) -> the entry as clients see it
Present = Callable[[str, StoredJob, Any], Any]


class RunEnds:
    """Reads and records the ends of runs: those the relay hears of, and
    those the follower's probes find (follow.py)."""

    def __init__(
        self,
        registry: Registry,
        jobs: Jobs,
        routing: Routing,
        upstream: Upstream,
        present: Present,
        completing: CompletingStep | None,
        late: LateRuns,
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
        self._reading: set[tuple[str, str]] = set()  # (backend, prompt_id) ends being read
        # Runs of jobs taken from a backend that it may still end (shared
        # with the binder).
        self.late = late
        jobs.events.subscribe(self)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in LEFT_BACKEND:
            self._told.discard(event.prompt_id)  # a later run's end is told anew

    def was_told(self, prompt_id: str) -> bool:
        """Whether this balancer marked the end of the job's run told."""
        return prompt_id in self._told

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
