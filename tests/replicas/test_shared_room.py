"""Two replicas in front of one backend fill its room together, never past it."""

from __future__ import annotations

import asyncio

from support import colored

from balancer.jobs.events import JobEvent
from balancer.replicas.slots import Slots

from .conftest import ReplicaFactory


async def test_two_replicas_never_fill_the_same_slot(make_replicas: ReplicaFactory) -> None:
    r0, r1 = await make_replicas(2, backends=1)  # max_pending_per_backend 1: two slots
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    a = (await r0.submit(colored(1)))["prompt_id"]
    # One slot left, and each replica's own view shows it free: both race for it.
    x, y = await asyncio.gather(r0.submit(colored(2)), r1.submit(colored(3)))
    assert gpu0.queue.remaining() == 2
    waiting = [job.prompt_id for r in (r0, r1) for job in r.balancer.jobs.queue]
    assert len(waiting) == 1 and waiting[0] in (x["prompt_id"], y["prompt_id"])
    slots = r0.balancer.replicas.slots  # type: ignore[union-attr]
    sent = {x["prompt_id"], y["prompt_id"]} - set(waiting)
    assert sorted(await slots.holders("gpu0")) == sorted({a, *sent})

    gpu0.resume()
    await r1.settle([y["prompt_id"]])
    await r0.settle([a, x["prompt_id"]])
    assert await slots.holders("gpu0") == []


async def test_a_dead_replicas_slots_free_after_its_lease(make_replicas: ReplicaFactory) -> None:
    (r0,) = await make_replicas(1, backends=1)
    mine = r0.balancer.replicas.slots  # type: ignore[union-attr]
    dead = Slots(mine.redis, 5.0, r0.clock)  # a replica killed with both slots taken
    assert await dead.take("gpu0", "x1", 2) and await dead.take("gpu0", "x2", 2)
    c = (await r0.submit(colored(3)))["prompt_id"]
    assert [job.prompt_id for job in r0.balancer.jobs.queue] == [c]
    r0.clock.advance(5.5)  # one lease, and nobody renewed them
    await r0.probe()
    await r0.settle([c])
    assert await r0.owner(c) == "gpu0"


async def test_a_job_waiting_for_room_goes_when_another_replica_frees_it(
    make_replicas: ReplicaFactory,
) -> None:
    """No probe and no `status` push in between: the slot given back is
    announced through Redis, and the waiting replica binds at once."""
    (r0,) = await make_replicas(1, backends=1)
    binder = r0.balancer.binder
    other = Slots(r0.balancer.replicas.slots.redis, 5.0, r0.clock)  # type: ignore[union-attr]
    assert await other.take("gpu0", "x1", 2) and await other.take("gpu0", "x2", 2)
    sent = asyncio.Event()

    class Watch:
        async def job_event(self, event: JobEvent) -> None:
            if event.phase == "dispatched":
                sent.set()

    r0.balancer.events.subscribe(Watch())
    c = (await r0.submit(colored(3)))["prompt_id"]
    async with asyncio.timeout(30):
        while "gpu0" not in binder._full:  # it tried, and another replica held every slot
            await asyncio.sleep(0.01)
    assert [job.prompt_id for job in r0.balancer.jobs.queue] == [c]

    await other.give_back("x1")
    async with asyncio.timeout(30):
        await sent.wait()
    assert await r0.owner(c) == "gpu0"
    assert sorted(await other.holders("gpu0")) == sorted(["x2", c])
