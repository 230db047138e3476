"""A start told while the job's dispatch lands: the backend's start comes
first (the job still dispatching), the dispatch lands while the start's
handler reads the store. The start is recorded once, whichever way the two
interleave, before its client is told (a replayed end then tells no second
start: lifecycle.Jobs.started)."""

from __future__ import annotations

import asyncio

from support import HANG_BOUND

from balancer.jobs.events import JobEvent, JobEvents
from balancer.jobs.lifecycle import Jobs
from balancer.store import StoredJob
from balancer.store.memory import MemoryStore


class PausedRead(MemoryStore):
    """The memory store, whose next `get_job` of `held` waits, once reached
    (`reached`), until `go` is set."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.armed = False
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    async def get_job(self, prompt_id: str) -> StoredJob | None:
        if self.armed and prompt_id == self.held:
            self.armed = False
            self.reached.set()
            await self.go.wait()
        return await super().get_job(prompt_id)


class SlowObserver:
    """An observer of the `dispatched` event that takes its time (the
    relay and the owners' record write to Redis): the move is stored, the
    dispatch's next step waits until `go`."""

    def __init__(self) -> None:
        self.entered, self.go = asyncio.Event(), asyncio.Event()

    async def job_event(self, event: JobEvent) -> None:
        if event.phase == "dispatched":
            self.entered.set()
            await self.go.wait()


async def test_a_start_whose_dispatch_lands_while_it_reads_the_job_is_recorded() -> None:
    store, events, observer = PausedRead("p"), JobEvents(), SlowObserver()
    events.subscribe(observer)
    jobs = Jobs(store, events, wall=lambda: 100.0)
    job = StoredJob("p", {}, "d", None, 1, state="dispatching", backend="gpu0")
    assert await store.create(job)
    store.armed = True  # the start's handler finds the job not queued yet, then reads it
    starting = asyncio.ensure_future(jobs.started("p", "gpu0"))
    await asyncio.wait_for(store.reached.wait(), HANG_BOUND)
    # The send's answer lands meanwhile: stored queued, its event under way.
    dispatching = asyncio.ensure_future(jobs.dispatched(job, "gpu0", b"{}"))
    await asyncio.wait_for(observer.entered.wait(), HANG_BOUND)
    store.go.set()  # the start's handler reads the job: queued
    await asyncio.wait_for(starting, HANG_BOUND)
    observer.go.set()
    await asyncio.wait_for(dispatching, HANG_BOUND)
    stored = await store.get_job("p")
    assert stored is not None and stored.state == "running", "it runs on gpu0"
    assert stored.started_at == 100.0, "its start recorded (its client is told it next)"
    assert jobs.starts_awaiting_dispatch() == 0
