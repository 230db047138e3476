"""Every replica's late binder wakes on every backend's `status` push, and
on a slot any replica gives back that is offered to it while it has jobs
waiting (test_slot_offers.py). A wake-up that finds no room for any of its
waiting jobs asks Redis nothing: the tenants' turn (a round trip) is
read only when a job could be bound."""

from __future__ import annotations

from dataclasses import replace

import redis.asyncio as redis
from support import colored

from balancer.config.access_settings import AuthSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.replicas.slots import RECHECK, Slots
from balancer.store.redis import RedisStore
from tests.auth.auth_helpers import api_key, as_

from .conftest import ReplicaFactory
from .test_slots import heard_up_to_now
from .test_tenant_turn import bob_beside_a_full_gpu0, submit_as


async def turn_reads(client: redis.Redis) -> int:
    """How many times Redis was asked for the tenants waiting pool-wide
    (the turn's read: GET of the turn and HKEYS of the waiting counts)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_hkeys", {}).get("calls", 0))


async def test_a_wake_up_that_finds_no_room_reads_no_turn(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    routing = replace(RoutingSettings(), max_pending_per_backend=0)  # one job at a time
    auth = AuthSettings(keys=(api_key("alice"), api_key("bob")))
    (r0,) = await make_replicas(1, backends=1, redis_store=RedisStore, auth=auth, routing=routing)
    gpu0, binder = r0.emulators["gpu0"], r0.balancer.binder
    gpu0.pause()
    client = redis.Redis.from_url(redis_url)
    try:
        blocker = await submit_as(r0, as_("alice"), 0)
        await r0.probe()  # gpu0 holds it: no room left there
        before = await turn_reads(client)
        await binder.pump()  # nothing waits
        waiting = [await submit_as(r0, as_(name), i) for i, name in enumerate(("bob", "alice"))]
        for _ in range(3):  # wake-ups, as pushes and freed slots bring them
            await r0.probe()
            await binder.pump()
        assert {job.prompt_id for job in r0.balancer.jobs.queue} == set(waiting)
        assert await turn_reads(client) == before

        gpu0.resume()
        await r0.settle([blocker, *waiting])  # room again: the turn is read, and both go
        assert await turn_reads(client) > before
        assert await client.get("balancer:turn") == b'"bob"'  # alice's, then bob's (by name)
    finally:
        await client.aclose()


async def test_a_backend_another_replica_fills_is_not_asked_again_until_a_slot_frees(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    """gpu0's one slot is another replica's (its job not yet in gpu0's
    `status`): r0 asks once, is refused, and its next wake-ups ask nothing,
    neither the slot nor the turn, until that slot is given back; then its
    job goes at once."""
    r0, other = await bob_beside_a_full_gpu0(make_replicas)
    client = redis.Redis.from_url(redis_url)
    try:
        b1 = await submit_as(r0, as_("bob"), 1)
        await r0.balancer.binder.pump()  # refused: gpu0 is full
        before = (await turn_reads(client), await slot_takes(client))
        for _ in range(3):  # gpu0 idle, as far as r0 can tell
            r0.clock.advance(0.1)
            await r0.balancer.binder.pump()
        assert [job.prompt_id for job in r0.balancer.jobs.queue] == [b1]
        assert (await turn_reads(client), await slot_takes(client)) == before
        await other.give_back("x1")
        await r0.settle([b1])
    finally:
        await client.aclose()


async def slot_takes(client: redis.Redis) -> int:
    """Slots asked for (the take's script drops the expired ones first)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_zremrangebyscore", {}).get("calls", 0))


async def test_a_freed_slot_wakes_the_replica_whose_job_waits_not_every_replica(
    make_replicas: ReplicaFactory,
) -> None:
    """Three replicas; gpu0's one slot is held elsewhere and only r0 has a
    job waiting for it: the slot given back is announced to r0, whose job
    goes at once, and r1 and r2 (nothing waiting) are not woken."""
    routing = replace(RoutingSettings(), max_pending_per_backend=0)
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore, routing=routing)
    slots = [r.balancer.replicas.slots for r in (r0, r1, r2)]  # type: ignore[union-attr]
    other = Slots(slots[0].redis, 5.0, r0.clock, "balancer:", "x")
    assert await other.take("gpu0", "x1", 1)
    waiting = (await r0.submit(colored(3)))["prompt_id"]
    await r0.balancer.binder.pump()  # refused: r0 waits for room
    assert [job.prompt_id for job in r0.balancer.jobs.queue] == [waiting]
    for idle in (r1, r2):
        await idle.balancer.binder.pump()  # nothing waits there

    await other.give_back("x1")
    await r0.settle([waiting])
    for idle in slots[1:]:
        await heard_up_to_now(idle)
    # r0 heard it (and its own job's end: it waits until its next beat)
    assert [s.waiters.heard["gpu0"] > 0 for s in slots] == [True, False, False]


async def test_a_slot_refused_does_not_read_the_turn_again_before_the_next_backend(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    """Both backends' slots are held by another replica (their jobs not yet
    in the backends' `status`): one binding pass reads the tenants' turn
    once, and asks each backend for a slot once."""
    routing = replace(RoutingSettings(), max_pending_per_backend=0)
    auth = AuthSettings(keys=(api_key("bob"),))
    (r0,) = await make_replicas(1, backends=2, redis_store=RedisStore, auth=auth, routing=routing)
    mine = r0.balancer.replicas.slots  # type: ignore[union-attr]
    other = Slots(mine.redis, 5.0, r0.clock, "balancer:", "x")
    assert await other.take("gpu0", "x1", 1) and await other.take("gpu1", "x2", 1)
    client = redis.Redis.from_url(redis_url)
    try:
        b1 = await submit_as(r0, as_("bob"), 1)
        await r0.balancer.binder.pump()
        r0.clock.advance(RECHECK + 0.1)  # the refusals are asked again now
        before = (await turn_reads(client), await slot_takes(client))
        await r0.balancer.binder.pump()
        after = (await turn_reads(client), await slot_takes(client))
        assert [job.prompt_id for job in r0.balancer.jobs.queue] == [b1]
        assert (after[0] - before[0], after[1] - before[1]) == (1, 2)
    finally:
        await client.aclose()
