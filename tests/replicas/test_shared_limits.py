"""An API key's limits hold pool-wide with several replicas: its rate
(token buckets in Redis) and its cap on unfinished jobs (counted by the
Redis store in the same script that records the job). Prompts sent to two
replicas at once get one allowance between them, not one each."""

from __future__ import annotations

import asyncio
from typing import Any

from support import FakeClock, Pool, colored

from balancer.config.access_settings import AuthSettings
from balancer.replicas.buckets import RedisBuckets
from balancer.store.redis import RedisStore
from tests.auth.auth_helpers import api_key, as_

from .conftest import ReplicaFactory

BURST = 5


class GatedStore(RedisStore):
    """A RedisStore whose `next_number` (taken after admission looked at
    the key's count, before the job is recorded) waits while its gate is
    closed: a test holds one replica between the two steps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.held = asyncio.Event()

    async def next_number(self) -> int:
        self.held.set()
        await self.gate.wait()
        return await super().next_number()


async def keyed_replicas(make_replicas: ReplicaFactory, **limits: Any) -> list[Pool]:
    keys = (api_key("alice", **limits), api_key("root", "admin"))
    pools = await make_replicas(2, redis_store=GatedStore, auth=AuthSettings(keys=keys))
    for emulator in pools[0].emulators.values():
        emulator.pause()  # nothing ends: every accepted job stays unfinished
    return pools


async def post(pool: Pool, i: int) -> tuple[int, dict[str, Any]]:
    resp = await pool.client.post("/prompt", json={"prompt": colored(i)}, headers=as_("alice"))
    return resp.status, await resp.json()


async def race(pools: list[Pool], count: int) -> list[tuple[int, dict[str, Any]]]:
    """`count` prompts at once, alternating between the replicas."""
    return await asyncio.gather(*(post(pools[i % 2], i) for i in range(count)))


async def test_a_rate_limit_is_one_allowance_across_replicas(
    make_replicas: ReplicaFactory,
) -> None:
    pools = await keyed_replicas(make_replicas, rate=0.001, burst=BURST)
    answers = await race(pools, 12)
    accepted = [body for status, body in answers if status == 200]
    refused = [body for status, body in answers if status == 429]
    assert len(accepted) == BURST and len(refused) == 12 - BURST
    assert {body["error"]["type"] for body in refused} == {"rate_limited"}
    assert len({body["prompt_id"] for body in accepted}) == BURST


async def test_a_cap_on_unfinished_jobs_is_counted_pool_wide(
    make_replicas: ReplicaFactory,
) -> None:
    pools = await keyed_replicas(make_replicas, max_queued=4)
    answers = await race(pools, 10)
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 4 and statuses.count(429) == 6
    details = {body["error"]["details"] for status, body in answers if status == 429}
    assert details == {"max_queued=4"}
    unfinished = await pools[1].balancer.store.count_unfinished("alice")
    assert unfinished == 4, "the shared store holds exactly the cap"


async def test_the_cap_is_checked_again_where_the_job_is_recorded(
    make_replicas: ReplicaFactory,
) -> None:
    """A replica that saw room under the cap, then waited while the other
    replica filled it, is refused when it records the job."""
    r0, r1 = await keyed_replicas(make_replicas, max_queued=2)
    store = r1.balancer.store
    assert isinstance(store, GatedStore)
    store.gate.clear()
    late = asyncio.create_task(post(r1, 0))
    await asyncio.wait_for(store.held.wait(), 30)  # r1 counted 0 unfinished
    assert [(await post(r0, i))[0] for i in (1, 2)] == [200, 200]
    store.gate.set()
    status, body = await asyncio.wait_for(late, 30)
    assert status == 429 and body["error"]["details"] == "max_queued=2"
    assert await store.count_unfinished("alice") == 2


async def test_a_prompt_over_the_cap_gives_its_rate_token_back(
    make_replicas: ReplicaFactory,
) -> None:
    """Refused by the cap, a prompt spends none of the key's shared rate:
    once a job ends, the next prompt (on the other replica) still has a token."""
    pools = await keyed_replicas(make_replicas, max_queued=2, rate=0.001, burst=3)
    first = [await post(pools[0], i) for i in range(2)]
    assert [status for status, _ in first] == [200, 200]
    status, body = await post(pools[1], 7)
    assert status == 429 and body["error"]["details"] == "max_queued=2"
    ended = [pools[0].watch("completed", body["prompt_id"]) for _, body in first]
    for emulator in pools[0].emulators.values():
        emulator.resume()
    await pools[0].settle([body["prompt_id"] for _, body in first])
    async with asyncio.timeout(30):  # kept history comes first, then the count drops
        for end in ended:
            await end.wait()
    status, body = await post(pools[1], 8)
    assert status == 200, body
    status, body = await post(pools[0], 9)
    assert status == 429 and body["error"]["type"] == "rate_limited"


async def test_buckets_refill_on_the_shared_clock(redis_url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    clock = FakeClock()
    a = RedisBuckets(client, "p:", clock, 2.0)
    b = RedisBuckets(client, "p:", clock, 2.0)
    assert [await a.take("k", 1.0, 2.0), await b.take("k", 1.0, 2.0)] == [None, None]
    wait = await a.take("k", 1.0, 2.0)
    assert wait is not None and 0.9 < wait <= 1.0
    await b.give_back("k", 1.0, 2.0)
    assert await a.take("k", 1.0, 2.0) is None, "a token given back is there for every replica"
    clock.advance(1.0)
    assert await b.take("k", 1.0, 2.0) is None
    assert await RedisBuckets(client, "q:", clock, 2.0).take("k", 1.0, 1.0) is None, "by prefix"
    await client.aclose()
