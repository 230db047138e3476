"""Every backend's `status` push wakes the late binder. With no job waiting
a pass could do nothing, so none begins (about 6 pushes a job each cost a
pass before); with a job waiting, a push that frees room binds it, with
nothing else to wake the binder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from support import HANG_BOUND, Pool, PoolFactory, colored

from balancer.backends.state import Backend
from balancer.config.routing_settings import RoutingSettings
from tests.backends.test_probe_wakes import queue_directly


def push_heard(pool: Pool, count: int) -> asyncio.Event:
    """Set once the balancer has handled a `status` push saying `count`
    (the binder woken by it, or not, by then: the same call wakes it)."""
    heard = asyncio.Event()
    relay = pool.balancer.relay
    note: Callable[[Backend], None] = relay.pushed

    def pushed(backend: Backend) -> None:
        note(backend)
        if backend.pushed is not None and backend.pushed[1] == count:
            heard.set()

    relay.pushed = pushed
    return heard


async def test_status_pushes_with_nothing_waiting_begin_no_pass(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    binder, gpu0 = pool.balancer.binder, pool.balancer.registry.get("gpu0")
    assert gpu0 is not None
    passes, idle, pushes = binder.wakes.passes, binder.wakes.idle, gpu0.pushes
    pool.emulators["gpu0"].pause()
    busy = push_heard(pool, 1)
    await queue_directly(pool, "gpu0")  # a prompt the balancer did not send
    await asyncio.wait_for(busy.wait(), HANG_BOUND)
    empty = push_heard(pool, 0)
    pool.emulators["gpu0"].resume()
    await asyncio.wait_for(empty.wait(), HANG_BOUND)

    assert gpu0.pushes - pushes >= 2, "its queue grew, then emptied"
    assert binder.wakes.idle - idle >= gpu0.pushes - pushes, "each push woke it"
    assert binder.wakes.passes == passes, "and none began a pass"
    assert not binder.wakes.is_due()


async def test_a_waiting_job_is_bound_when_a_status_push_alone_frees_room(
    make_pool: PoolFactory,
) -> None:
    """gpu0 takes one prompt at a time and runs one the balancer did not
    send (so its end is no event of the balancer's jobs, and no probe runs):
    the push saying its queue emptied is the only wake-up the job gets."""
    pool = await make_pool(1, routing=replace(RoutingSettings(), max_pending_per_backend=0))
    binder, emulator = pool.balancer.binder, pool.emulators["gpu0"]
    emulator.pause()
    await queue_directly(pool, "gpu0")
    await pool.probe()  # gpu0 is full
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    assert [job.prompt_id for job in pool.balancer.jobs.queue] == [prompt_id]
    passes = binder.wakes.passes
    pool.clock.advance(0.1)  # a push from now on is newer than that probe

    emulator.resume()
    await pool.done(prompt_id)
    assert prompt_id in emulator.executed
    assert binder.wakes.passes > passes


async def test_the_pass_after_the_last_waiting_job_went_tells_the_room_none_waits(
    make_pool: PoolFactory,
) -> None:
    """The pass that bound the last waiting job began with jobs waiting (with
    replicas, it asked to hear of every slot freed): the next wake-up begins
    one more, which says none waits; the one after begins none."""
    pool = await make_pool(1)
    binder = pool.balancer.binder
    told: list[bool] = []
    wants_room = pool.balancer.dispatcher.wants_room

    async def noted(waiting: bool) -> None:
        told.append(waiting)
        await wants_room(waiting)

    pool.balancer.dispatcher.wants_room = noted  # type: ignore[method-assign]
    pool.emulators["gpu0"].pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(3)]
    assert len(pool.balancer.jobs.queue) == 1, "two on gpu0, one waiting"
    pool.emulators["gpu0"].resume()
    await pool.settle(ids)
    assert told[-1] is False and True in told
    passes = binder.wakes.passes
    binder.wake()
    assert not binder.wakes.is_due() and binder.wakes.passes == passes


async def test_a_job_its_backend_lost_is_waiting_when_its_event_wakes_the_binder(
    make_pool: PoolFactory,
) -> None:
    """Its `retried` event wakes the binder: the job is in the queue by
    then, so that wake-up begins a pass (with nothing else waiting, one
    before it would have been a wake-up with nothing to do)."""
    pool = await make_pool(1)
    binder, emulator = pool.balancer.binder, pool.emulators["gpu0"]
    emulator.pause()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    seen: list[tuple[bool, bool]] = []
    passes = binder.wakes.passes

    class Watch:
        async def job_event(self, event: Any) -> None:
            if event.phase == "retried":
                waiting = event.prompt_id in pool.balancer.jobs.queue
                seen.append((waiting, binder.wakes.is_due() or binder.wakes.passes > passes))

    pool.balancer.events.subscribe(Watch())
    redispatched = pool.watch("dispatched", prompt_id)
    await emulator.crash()  # SIGKILL and restart: its queue is gone
    await pool.probe()  # lost: it waits again
    assert seen == [(True, True)]
    await asyncio.wait_for(redispatched.wait(), HANG_BOUND)


async def test_a_push_that_frees_a_backend_lets_it_take_a_job_pending_behind_another(
    make_pool: PoolFactory,
) -> None:
    """Nothing waits in the balancer, but each backend holds a job behind a
    running one: while neither is idle a push begins no pass; once gpu1's
    pushes say it is idle, a pass takes gpu0's pending job back and sends
    it to gpu1 (work stealing), with no probe."""
    pool = await make_pool(2)
    binder, store = pool.balancer.binder, pool.balancer.store
    for emulator in pool.emulators.values():
        emulator.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    assert len(pool.balancer.jobs.queue) == 0, "two on each backend"
    on_gpu0 = [i for i in ids if (job := await store.get_job(i)) and job.backend == "gpu0"]
    assert len(on_gpu0) == 2
    passes, busy = binder.wakes.passes, push_heard(pool, 3)
    await queue_directly(pool, "gpu1")  # gpu1 pushes 3: nobody is idle
    await asyncio.wait_for(busy.wait(), HANG_BOUND)
    assert binder.wakes.passes == passes and not binder.wakes.is_due()

    pool.emulators["gpu1"].resume()
    await pool.done(on_gpu0[1])
    assert on_gpu0[1] in pool.emulators["gpu1"].executed
