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

    # Each job's end gives its slot back in an observer of its `completed`
    # event, on the replica that sent it; its history is kept before.
    ends = [r0.watch("completed", a), r0.watch("completed", x["prompt_id"])]
    ends.append(r1.watch("completed", y["prompt_id"]))
    gpu0.resume()
    await r1.settle([y["prompt_id"]])
    await r0.settle([a, x["prompt_id"]])
    async with asyncio.timeout(30):
        for end in ends:
            await end.wait()
    assert await slots.holders("gpu0") == []


async def test_a_dead_replicas_slots_free_after_its_lease(make_replicas: ReplicaFactory) -> None:
    (r0,) = await make_replicas(1, backends=1)
    mine = r0.balancer.replicas.slots  # type: ignore[union-attr]
    dead = Slots(
        mine.redis, 5.0, r0.clock, "balancer:", "dead"
    )  # a replica killed with both slots taken
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
    other = Slots(r0.balancer.replicas.slots.redis, 5.0, r0.clock, "balancer:", "x")  # type: ignore[union-attr]
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


async def test_a_job_cancelled_through_another_replica_frees_its_slot(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1, one_store=True)
    r0.emulators["gpu0"].pause()
    ids = [(await r0.submit(colored(i)))["prompt_id"] for i in (1, 2)]
    slots = r0.balancer.replicas.slots  # type: ignore[union-attr]
    assert sorted(await slots.holders("gpu0")) == sorted(ids)
    cancelled = r1.watch("cancelled", ids[1])
    resp = await r1.client.post("/queue", json={"delete": [ids[1]]})
    assert resp.status == 200
    async with asyncio.timeout(30):
        await cancelled.wait()
    assert await slots.holders("gpu0") == [ids[0]]  # r0 took it; r1 gave it back
    await slots.renew()
    assert await slots.holders("gpu0") == [ids[0]]  # r0's renewal does not take it again
    r0.emulators["gpu0"].resume()
    await r0.settle([ids[0]])


async def test_a_replica_moves_only_its_own_jobs_to_an_idle_backend(
    make_replicas: ReplicaFactory,
) -> None:
    """Work stealing with several replicas: the job pending behind a running
    one is taken back by the replica that sent it (which holds its slot and
    follows it), never by another; no slot is left held."""
    r0, r1 = await make_replicas(2, backends=2, one_store=True)
    busy, other = r0.emulators["gpu0"], r0.emulators["gpu1"]
    busy.pause()
    other.pause()
    first = "runs-and-holds"
    started = r0.watch("running", first)
    await r0.submit(colored(1), prompt_id=first)
    ids = [(await r0.submit(colored(i)))["prompt_id"] for i in (2, 3, 4)]
    assert [await r0.owner(i) for i in [first, *ids]] == ["gpu0", "gpu1", "gpu0", "gpu1"]
    async with asyncio.timeout(30):
        await started.wait()
    await r1.probe()  # r1 sees both backends busy, and nothing waits on it
    other.resume()  # gpu1 finishes its two and goes idle: the job behind `first` moves there
    await r0.settle([ids[0], ids[2], ids[1]])
    assert await r0.owner(ids[1]) == "gpu1"
    assert not r1.balancer.follower.follows(ids[1])
    # Its end's observers (the slots among them) have all run once the
    # `completed` event reaches this later one; its history is kept before.
    ended = r0.watch("completed", first)
    busy.resume()
    await r0.settle([first])
    async with asyncio.timeout(30):
        await ended.wait()
    slots = r0.balancer.replicas.slots  # type: ignore[union-attr]
    assert await slots.holders("gpu0") == [] and await slots.holders("gpu1") == []
