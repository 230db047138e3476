"""A slot given back is offered to one replica waiting for room, the
waiters in turn, not to every waiter at once (they raced for it, and each
loser paid a wake-up, the tenants' turn read and a refused take); an offer
the replica's binding pass did not use goes on to the next waiter while
the slot is still free, until each has had it once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as redis
from support import HANG_BOUND, FakeClock, colored

from balancer.config.routing_settings import RoutingSettings
from balancer.replicas.slots import Slots
from balancer.store.redis import RedisStore

from .conftest import ReplicaFactory
from .test_slots import heard_up_to_now


@pytest.fixture
async def waiting(redis_url: str) -> Any:
    """A replica that frees slots (`s0`) and three whose jobs wait for
    room (s1, s2, s3), each on its own connection, listening."""
    clock = FakeClock()
    connections = [redis.Redis.from_url(redis_url) for _ in range(4)]
    slots = [Slots(c, 5.0, clock, "balancer:", f"s{i}") for i, c in enumerate(connections)]
    tasks = []
    for waiter in slots[1:]:
        await waiter.subscribe()
        tasks.append(asyncio.create_task(waiter.watch_freed(lambda: None)))
        await waiter.wants_room(True)
    yield slots
    for task in tasks:
        task.cancel()
    for each in slots:
        await each.close()
    for connection in connections:
        await connection.aclose()


async def heard(slots: list[Slots]) -> list[int]:
    """The offers of gpu0 each of `slots` has heard so far."""
    for each in slots:
        await heard_up_to_now(each)
    return [each.waiters.heard["gpu0"] for each in slots]


async def test_each_slot_freed_is_offered_to_one_waiter_in_turn(waiting: list[Slots]) -> None:
    freer, *waiters = waiting
    told = []
    for round_ in range(4):
        assert await freer.take("gpu0", f"p{round_}", 1)
        await freer.give_back(f"p{round_}")
        told.append(await heard(waiters))
    assert told == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [2, 1, 1]]


async def test_an_offer_not_used_goes_on_while_the_slot_is_free(waiting: list[Slots]) -> None:
    """s1's pass takes no slot there: s2 is offered it, then s3; s3 passes
    too, and nobody is offered it again (each has had it once). A slot
    taken meanwhile is not offered on."""
    freer, s1, s2, s3 = waiting
    assert await freer.take("gpu0", "p1", 1)
    await freer.give_back("p1")
    assert await heard([s1, s2, s3]) == [1, 0, 0]
    for waiter, after in ((s1, [1, 1, 0]), (s2, [1, 1, 1]), (s3, [1, 1, 1])):
        await waiter.wants_room(True)  # a binding pass begins...
        await waiter.passed(1)  # ...and ends with no job sent to gpu0
        assert await heard([s1, s2, s3]) == after

    assert await freer.take("gpu0", "p2", 1)
    await freer.give_back("p2")  # to s2, after s1 (offered the last one)
    assert await heard([s1, s2, s3]) == [1, 2, 1]
    assert await freer.take("gpu0", "p3", 1)  # gone before s2's pass ends
    await s2.wants_room(True)
    await s2.passed(1)
    assert await heard([s1, s2, s3]) == [1, 2, 1]


async def test_an_offer_to_a_replica_with_nothing_waiting_goes_on_at_once(
    waiting: list[Slots],
) -> None:
    """s1's last pass found nothing waiting (it stays among the waiters
    until its next beat): no pass of its comes for the offer, which goes
    on to s2 without one."""
    freer, s1, s2, s3 = waiting
    await s1.wants_room(False)
    assert await freer.take("gpu0", "p1", 1)
    await freer.give_back("p1")
    async with asyncio.timeout(HANG_BOUND):
        while (await heard([s1, s2, s3])) != [1, 1, 0]:
            await asyncio.sleep(0.01)


async def test_a_slot_offered_and_used_goes_to_nobody_else(waiting: list[Slots]) -> None:
    freer, s1, s2, s3 = waiting
    assert await freer.take("gpu0", "p1", 1)
    await freer.give_back("p1")
    assert await heard([s1, s2, s3]) == [1, 0, 0]
    await s1.wants_room(True)
    assert await s1.take("gpu0", "s1-job", 1)
    await s1.passed(1)
    assert await heard([s1, s2, s3]) == [1, 0, 0]


async def two_waiting(make_replicas: ReplicaFactory) -> tuple[list[Any], Slots, list[str]]:
    """Two replicas, one backend taking one job at a time whose slot a
    third holds (`x1`, through the Slots returned), and a job of each
    replica waiting for it (r0's first)."""
    routing = replace(RoutingSettings(), max_pending_per_backend=0)
    pools = await make_replicas(2, backends=1, redis_store=RedisStore, routing=routing)
    slots = pools[0].balancer.replicas.slots  # type: ignore[union-attr]
    other = Slots(slots.redis, 5.0, pools[0].clock, "balancer:", "x")
    assert await other.take("gpu0", "x1", 1)
    jobs = []
    for pool, color in zip(pools, (3, 4), strict=True):
        jobs.append((await pool.submit(colored(color)))["prompt_id"])
        await pool.balancer.binder.pump()  # refused: it waits for room
        assert [job.prompt_id for job in pool.balancer.jobs.queue] == [jobs[-1]]
    return pools, other, jobs


async def test_a_freed_slot_wakes_one_waiting_replica_and_the_next_slot_the_other(
    make_replicas: ReplicaFactory,
) -> None:
    pools, other, (first, second) = await two_waiting(make_replicas)
    slots = [pool.balancer.replicas.slots for pool in pools]
    gpu0 = pools[0].emulators["gpu0"]
    gpu0.pause()
    sent = pools[0].watch("dispatched", first)
    await other.give_back("x1")
    await asyncio.wait_for(sent.wait(), HANG_BOUND)
    assert await heard(slots) == [1, 0]  # r0 alone was woken
    assert [job.prompt_id for job in pools[1].balancer.jobs.queue] == [second]

    gpu0.resume()  # r0's job ends there: its slot is r1's turn
    await pools[0].settle([first])
    await pools[1].settle([second])


async def test_an_offer_the_replica_cannot_use_goes_to_the_next_waiter(
    make_replicas: ReplicaFactory,
) -> None:
    """r0's job was cancelled while it waited: r0 is still among the
    waiters (until its next beat) and is offered the slot first; its pass
    has nothing to send, so r1 is offered it and its job goes at once (r1
    found gpu0 full, and would not ask again for RECHECK without it)."""
    pools, other, (first, second) = await two_waiting(make_replicas)
    resp = await pools[0].client.post("/queue", json={"delete": [first]})
    assert resp.status == 200
    gpu0 = pools[1].emulators["gpu0"]
    gpu0.pause()
    sent = pools[1].watch("dispatched", second)
    await other.give_back("x1")
    await asyncio.wait_for(sent.wait(), HANG_BOUND)
    slots = [pool.balancer.replicas.slots for pool in pools]
    assert await heard(slots) == [1, 1]
    gpu0.resume()
    await pools[1].settle([second])
