"""A probe that read a backend's queue just before a prompt reached it must
not take that prompt for lost while the balancer is still recording its
send. The store holds the job queued on that backend as soon as the move is
made, but the balancer that sent it hears so only when the store's answer
comes back (a Redis reply, a SQLite thread's result): a probe reconciling
in between saw neither the prompt in the backend's queue nor a send of it
it knows of. Taking it for lost sent it to the other backend too, and it
ran twice."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from support import HANG_BOUND, PoolFactory, colored

from balancer.emulator.faults import Handler
from balancer.store import MemoryStore, Store, StoredJob


class HeldQueueReads:
    """Emulator middleware: while armed, each backend answers `GET /queue`
    as it is then, and the answer is held until released."""

    def __init__(self, backends: int) -> None:
        self.backends = backends
        self.armed = False
        self.served: list[str] = []
        self.all_served = asyncio.Event()  # every backend answered; none delivered
        self.release = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        held = self.armed and (request.method, request.path) == ("GET", "/queue")
        response = await handler(request)
        if held:
            self.served.append(request.host)
            if len(self.served) == self.backends:
                self.all_served.set()
            await self.release.wait()
        return response


class HeldMoveAnswer:
    """A store whose next move to `to`, once armed, is made at once and
    answered only when released: the answer on its way back."""

    def __init__(self, inner: Store, to: str) -> None:
        self.inner = inner
        self.to = to
        self.armed = False
        self.made = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def transition(
        self, prompt_id: str, allowed: Any, to: str, fields: Any, *more: Any
    ) -> StoredJob | None:
        job = await self.inner.transition(prompt_id, allowed, to, fields, *more)
        if self.armed and to == self.to and job is not None:
            self.armed = False
            self.made.set()
            await self.release.wait()
        return job


async def test_a_probe_that_missed_a_prompt_being_recorded_does_not_send_it_twice(
    make_pool: PoolFactory,
) -> None:
    reads = HeldQueueReads(backends=2)
    store = HeldMoveAnswer(MemoryStore(), to="queued")
    pool = await make_pool(2, store=store, middlewares=(reads.middleware,))
    for emulator in pool.emulators.values():
        emulator.pause()  # nothing ends: only a probe could end the job
    reads.armed = True
    probing = asyncio.ensure_future(pool.probe())
    await asyncio.wait_for(reads.all_served.wait(), HANG_BOUND)  # both queues read empty
    reads.armed = False
    store.armed = True
    submitting = asyncio.ensure_future(pool.submit(colored(1)))
    await asyncio.wait_for(store.made.wait(), HANG_BOUND)  # on its backend, stored queued there
    reads.release.set()
    await asyncio.wait_for(probing, HANG_BOUND)  # the probe's reconcile ran meanwhile
    store.release.set()
    prompt_id = (await asyncio.wait_for(submitting, HANG_BOUND))["prompt_id"]
    for emulator in pool.emulators.values():
        emulator.resume()
    await pool.settle([prompt_id])
    runs = [i for e in pool.emulators.values() for i in e.executed]
    assert runs == [prompt_id], "it ran exactly once"
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.lost_from == (), "never taken for lost"
