"""The API keys' turn in the balancer queue is pool-wide: two replicas, each
holding waiting jobs of two keys, bind them alternating between the keys
as one balancer holding all of them would (and a replica whose own jobs
are all of the key just served leaves the turn to the one holding the
other key's)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import redis.asyncio as redis
from support import Pool, colored

from balancer.config.access_settings import AuthSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.jobs.events import JobEvent
from balancer.replicas.slots import Slots
from balancer.replicas.turn import DEFER
from balancer.store import StoredJob
from balancer.store.redis import RedisStore
from tests.auth.auth_helpers import api_key, as_

from .conftest import ReplicaFactory


async def submit_as(pool: Pool, headers: dict[str, str], i: int) -> str:
    resp = await pool.client.post("/prompt", json={"prompt": colored(i)}, headers=headers)
    assert resp.status == 200, await resp.text()
    prompt_id: str = (await resp.json())["prompt_id"]
    return prompt_id


async def bob_beside_a_full_gpu0(make_replicas: ReplicaFactory) -> tuple[Pool, Slots]:
    """One replica, bob's key, and one backend taking one job at a time,
    whose slot another replica holds (as `x1`, through the Slots returned)."""
    routing = replace(RoutingSettings(), max_pending_per_backend=0)
    auth = AuthSettings(keys=(api_key("bob"),))
    (r0,) = await make_replicas(1, backends=1, redis_store=RedisStore, auth=auth, routing=routing)
    slots = r0.balancer.replicas.slots  # type: ignore[union-attr]
    other = Slots(slots.redis, 5.0, r0.clock, "balancer:", "x")
    assert await other.take("gpu0", "x1", 1)
    return r0, other


class Sent:
    """Every job bound on any replica, in the order they were sent."""

    def __init__(self, pools: list[Pool]) -> None:
        self.order: list[str] = []
        for pool in pools:
            pool.balancer.events.subscribe(self)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase == "dispatched":
            self.order.append(event.prompt_id)


async def test_two_replicas_take_the_keys_in_one_rotation(make_replicas: ReplicaFactory) -> None:
    keys = (api_key("alice"), api_key("bob"), api_key("carol"))
    routing = replace(RoutingSettings(), max_pending_per_backend=0)  # one job at a time
    r0, r1 = await make_replicas(
        2, backends=1, redis_store=RedisStore, auth=AuthSettings(keys=keys), routing=routing
    )
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    sent = Sent([r0, r1])
    blocker = await submit_as(r0, {"X-API-Key": "carol"}, 0)  # holds the one slot
    alice, bob = as_("alice"), as_("bob")
    # r0 holds three of alice's jobs and one of bob's; r1 one of alice's and two of bob's.
    held: dict[str, list[str]] = {"alice": [], "bob": []}
    on: dict[str, Pool] = {}
    plan: list[tuple[Pool, str, dict[str, Any]]] = [
        (r0, "alice", alice), (r0, "alice", alice), (r0, "bob", bob), (r0, "alice", alice),
        (r1, "bob", bob), (r1, "alice", alice), (r1, "bob", bob),
    ]  # fmt: skip
    for i, (pool, name, headers) in enumerate(plan, start=1):
        prompt_id = await submit_as(pool, headers, i)
        held[name].append(prompt_id)
        on[prompt_id] = pool
    waiting = {job.prompt_id for r in (r0, r1) for job in r.balancer.jobs.queue}
    assert waiting == {*held["alice"], *held["bob"]}
    assert sent.order == [blocker]

    gpu0.resume()
    mine, theirs = ([p for p in on if on[p] is pool] for pool in (r0, r1))
    await asyncio.gather(r0.settle([blocker, *mine]), r1.settle(theirs))

    tenant = {p: name for name, ids in held.items() for p in ids}
    order = [tenant[p] for p in sent.order[1:]]
    # One balancer holding all seven: alice, bob in turn while both wait.
    assert order == ["alice", "bob", "alice", "bob", "alice", "bob", "alice"]
    # Each key's jobs on one replica go in the order they came.
    for pool in (r0, r1):
        for ids in held.values():
            own = [p for p in ids if on[p] is pool]
            assert [p for p in sent.order if p in own] == own


async def test_a_turn_left_to_another_replica_waits_at_most_defer(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    """bob's job waits on a replica that does not bind it (it hangs, or died
    and is not adopted yet): r0 leaves bob the turn for DEFER seconds, then
    sends alice's next job rather than hold the backend idle."""
    keys = (api_key("alice"), api_key("carol"))
    routing = replace(RoutingSettings(), max_pending_per_backend=0)
    (r0,) = await make_replicas(
        1, backends=1, redis_store=RedisStore, auth=AuthSettings(keys=keys), routing=routing
    )
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    blocker = await submit_as(r0, {"X-API-Key": "carol"}, 0)
    a1, a2 = [await submit_as(r0, as_("alice"), i) for i in (1, 2)]
    client = redis.Redis.from_url(redis_url)
    elsewhere = RedisStore(client, "balancer:")
    try:
        bobs = StoredJob("bob-1", {"prompt": colored(3)}, "d", None, 3, tenant="bob")
        assert await elsewhere.create(bobs)
        gpu0.resume()
        await r0.settle([blocker, a1])  # alice's turn: a1 goes
        # The probe shows gpu0 empty: the `status` push after a1 may have come
        # at the same (fake) instant as the last probe of settle, which still
        # counted a1, and not been taken as newer. Then one pass of the binder:
        # r0 tries a2, and leaves bob the turn.
        await r0.probe()
        await r0.balancer.binder.pump()
        turn = r0.balancer.replicas.turn  # type: ignore[union-attr]
        assert turn._deferred is not None
        assert turn._deferred[1] == "bob"
        assert [job.prompt_id for job in r0.balancer.jobs.queue] == [a2]
        stored = await elsewhere.get_job(a2)
        assert stored is not None and stored.state == "waiting"
        r0.clock.advance(DEFER)
        await r0.settle([a2])  # its probes wake the binder: a2 goes
    finally:
        await elsewhere.aclose()
        await client.aclose()


async def test_a_replica_that_finds_no_room_leaves_the_turn_untouched(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    """bob's job heads r0's rotation, and another replica holds gpu0's one
    slot: r0 sends nothing, and writes no turn meanwhile. Had it moved the
    turn to bob and back, a replica that read it in between would serve the
    tenant after bob next, and, refused a slot too, move the turn back to
    bob, who was never served (keys were served twice in a row)."""
    r0, other = await bob_beside_a_full_gpu0(make_replicas)
    b1 = await submit_as(r0, as_("bob"), 1)
    assert [job.prompt_id for job in r0.balancer.jobs.queue] == [b1]
    client = redis.Redis.from_url(redis_url)
    try:
        async with client.pipeline(transaction=True) as pipe:
            await pipe.watch("balancer:turn")  # as another replica that read it
            await r0.balancer.binder.pump()
            pipe.multi()
            pipe.get("balancer:turn")
            assert await pipe.execute() == [None]  # no WatchError: never written
        assert [job.prompt_id for job in r0.balancer.jobs.queue] == [b1]
        await other.give_back("x1")
        await r0.settle([b1])
        assert await client.get("balancer:turn") == b'"bob"'  # moved once sent
    finally:
        await client.aclose()
