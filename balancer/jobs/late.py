"""The late binder: jobs wait in the balancer and are bound to a backend only
when one has room, to the least-loaded one. Also failover (a lost job is
dispatched again under the same prompt_id, up to `max_attempts`), visible
failure, and restoring unfinished jobs after a balancer restart.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from balancer.backends.state import Backend, Clock
from balancer.catalog.needs import Needs, needs_of
from balancer.catalog.refusal import unmet_body
from balancer.config.model import RoutingSettings
from balancer.jobs.dispatch import Broken, Dispatcher, Sent, Unreachable
from balancer.jobs.events import JobEvent
from balancer.jobs.failure import failed_entry, rejection_error
from balancer.jobs.fair import FairQueue
from balancer.jobs.model import Job
from balancer.jobs.steal import Stealer
from balancer.logs import get_logger
from balancer.scheduling import NoBackend
from balancer.store import StoredJob

log = get_logger("balancer.jobs")

# Sends one event to a job's client the way ComfyUI targets it.
Notify = Callable[[str | None, str, dict[str, Any]], None]

# Waiting jobs looked at past the head when it waits for its capable set.
LOOKAHEAD = 64


class LateBinder:
    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: RoutingSettings,
        clock: Clock,
        notify: Notify,
        wall: Clock = time.time,
    ) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.tracker = dispatcher.tracker
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.notify = notify
        self.queue = FairQueue()  # round-robin across API keys
        self.stealer: Stealer | None = None  # set when work stealing is on
        self.counter = 0
        self._wake = asyncio.Event()
        self._done_at: deque[float] = deque(maxlen=50)
        self.tracker.events.subscribe(self)

    @property
    def max_queue(self) -> int:
        return self.settings.max_queue

    def number_for(self, request: dict[str, Any]) -> float | None:
        """ComfyUI's numbering: an explicit `number`, `front` jumps ahead of
        everything queued, else the next counter value."""
        given = request.get("number")
        if given is not None:
            if isinstance(given, bool) or not isinstance(given, int | float):
                return None
            return float(given)
        self.counter += 1
        return float(-self.counter if request.get("front") else self.counter)

    def enqueue(self, job: StoredJob) -> None:
        self.store.put_job(job)
        self.queue.push(job)
        log.info("queued", prompt_id=job.prompt_id, waiting=len(self.queue))
        self.tracker.events.emit(JobEvent(job.prompt_id, "queued"))
        self.wake()

    def remove(self, prompt_id: str) -> bool:
        """Delete a waiting job (POST /queue delete, cancel)."""
        if self.queue.remove(prompt_id) is None:
            return False
        self.store.remove_job(prompt_id)
        return True

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Dispatch waiting jobs whenever something may have freed room."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.pump()

    async def pump(self) -> None:
        while (found := self._bindable()) is not None or await self.steal():
            if found is None:
                continue  # a stolen job is waiting now: look again
            job, backend = found
            if job is self.queue.peek():
                self.queue.pop()  # keeps the tenants' rotation
            else:
                self.queue.remove(job.prompt_id)
            result = await self.dispatcher.send(job, backend, job.answer)
            if isinstance(result, Unreachable):
                self.queue.push(job)
            elif isinstance(result, Broken):
                self.lost(replace(job, attempts=job.attempts + 1), result.detail)
            elif isinstance(result, Sent) and not result.accepted:
                self.fail(job, *rejection_error(result.answer.body, result.answer.status))

    def _bindable(self) -> tuple[StoredJob, Backend] | None:
        """The first waiting job a backend can take now, with that backend.
        Past the head only when the head waits for its capable set (in a
        mixed pool a prompt for a model two GPUs hold must not hold up work
        the others could run); a job no backend in the pool can run any more
        (its model went away) fails visibly instead of waiting forever."""
        for job in list(itertools.islice(self.queue, LOOKAHEAD)):
            needs = needs_of(job.request.get("prompt"))
            backend = self.dispatcher.choose(needs, set(), count_misses=False)
            if not isinstance(backend, NoBackend):
                return job, backend
            unmet = self.dispatcher.fitter.refusal(needs)
            if unmet:
                self.queue.remove(job.prompt_id)
                body = unmet_body(unmet)
                self.fail(job, body["error"]["type"], body["error"]["message"], body["node_errors"])
            elif not backend.outcome.startswith(("capable_", "not_capable")):
                return None  # every backend is out for every job alike
        return None

    async def steal(self) -> bool:
        """Nothing waits here and a backend is idle: take back a job pending
        behind a running one elsewhere, to bind it again (see steal.py)."""
        if self.stealer is None or not self.tracker.jobs:
            return False
        idle = self.dispatcher.choose(Needs(), set(), count_misses=False, rotate=False)
        if isinstance(idle, NoBackend) or idle.load() != 0:
            return False
        job = self.stealer.candidate(idle, partial(self._fits, idle))
        stored = self.store.get_job(job.prompt_id) if job else None
        if job is None or stored is None or not await self.stealer.take_back(job):
            return False
        self.tracker.jobs.pop(job.prompt_id, None)
        self.store.remove_pin(job.prompt_id)
        moved = replace(stored, state="queued", backend=None, attempts=max(0, stored.attempts - 1))
        self.store.put_job(moved)
        self.queue.push(moved)
        return True

    def _fits(self, backend: Backend, prompt_id: str) -> bool:
        stored = self.store.get_job(prompt_id)
        needs = needs_of(stored.request.get("prompt") if stored else None)
        return self.dispatcher.fitter.fit(backend.name, needs).capable

    def lost(self, job: StoredJob, reason: str) -> None:
        """A job its backend no longer has: again, or failed after max_attempts."""
        self.tracker.jobs.pop(job.prompt_id, None)
        self.store.remove_pin(job.prompt_id)
        if job.attempts >= self.settings.max_attempts:
            self.fail(job, "job_lost", f"lost {job.attempts} times: {reason}", {})
            return
        log.warning("retried", prompt_id=job.prompt_id, attempt=job.attempts + 1, reason=reason)
        self.tracker.events.emit(JobEvent(job.prompt_id, "retried", job.backend, detail=reason))
        self.enqueue(replace(job, state="queued", backend=None))

    def lost_by_id(self, prompt_id: str, reason: str) -> None:
        stored = self.store.get_job(prompt_id)
        if stored is not None:
            self.lost(stored, reason)

    def backend_lost(self, backend: str) -> None:
        """A backend went down: its unfinished jobs go elsewhere."""
        for job in [j for j in self.tracker.jobs.values() if j.backend == backend]:
            self.lost_by_id(job.prompt_id, f"backend {backend} lost")

    def fail(self, job: StoredJob, type_: str, message: str, node_errors: dict[str, Any]) -> None:
        """End a job visibly: a history entry with the error, and on its
        client's socket `execution_error` then `executing` null."""
        entry, error = failed_entry(job, type_, message, node_errors, self.wall())
        self.store.put_history(job.prompt_id, entry)
        self.store.remove_job(job.prompt_id)
        self.tracker.jobs.pop(job.prompt_id, None)
        log.warning("failed", prompt_id=job.prompt_id, error=type_)
        self.tracker.events.emit(JobEvent(job.prompt_id, "failed", job.backend, detail=type_))
        self.notify(job.client_id, "execution_error", error)
        self.notify(job.client_id, "executing", {"node": None, "prompt_id": job.prompt_id})

    def restore(self) -> int:
        """After a restart: waiting jobs wait again; dispatched ones are
        followed, and the first probe of their backend reconciles them."""
        jobs = self.store.unfinished_jobs()
        for job in jobs:
            if job.state == "queued" or job.backend is None:
                self.queue.push(job)
            else:
                restored = Job(job.prompt_id, job.backend, job.client_id, -math.inf, -math.inf)
                self.tracker.jobs[job.prompt_id] = restored
        numbers = [abs(j.number) for j in jobs]
        self.counter = int(max(numbers, default=0))
        self.wake()
        return len(jobs)

    def job_event(self, event: JobEvent) -> None:
        if event.phase in ("completed", "failed", "interrupted"):
            self._done_at.append(self.clock())
            self.wake()

    def retry_after(self) -> int:
        """Seconds until the queue has room, from recent throughput."""
        done = self._done_at
        if len(done) < 2 or done[-1] <= done[0]:
            return 5
        rate = (len(done) - 1) / (done[-1] - done[0])
        return max(1, min(600, math.ceil(len(self.queue) / rate)))
