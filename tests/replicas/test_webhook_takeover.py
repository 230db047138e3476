"""A webhook owed by a replica that dies is sent by another once the dead
one's hold on it lapses, never while it holds it: once, with the same
Idempotency-Key as the dead replica's attempt."""

from __future__ import annotations

import asyncio
import json

from support import HANG_BOUND, Pool, colored
from webhook_support import HOOKS, Receiver

from balancer.store.redis import RedisStore
from balancer.tasks import cancel_all
from balancer.webhooks.owing import hold_for
from balancer.webhooks.sender import Webhooks, backoff
from balancer.webhooks.setup import WEBHOOKS

from .conftest import ReplicaFactory, kill, parked


def hooks(replica: Pool) -> Webhooks:
    return replica.client.app[WEBHOOKS]  # type: ignore[index, no-any-return]


async def test_a_killed_replicas_webhook_is_sent_once_by_another(
    make_replicas: ReplicaFactory,
) -> None:
    receiver = Receiver(refuse=1)
    try:
        url = await receiver.start()
        r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore, webhooks=HOOKS)
        retrying = asyncio.Event()

        async def wait_to_retry(seconds: float) -> None:
            retrying.set()
            await parked(seconds)

        hooks(r0).sleep = wait_to_retry
        prompt_id = (await r0.submit(colored(2), extra_data={"webhook": url}))["prompt_id"]
        # r0 ended it, its first attempt failed, and it waits to retry: it dies now
        await asyncio.wait_for(retrying.wait(), HANG_BOUND)
        assert [a.taken for a in receiver.attempts] == [False]
        await kill(r0)
        await cancel_all(hooks(r0).tasks.values())  # its sender dies with it
        assert await hooks(r1).sweep() == 0, "r0 holds it: r1 leaves it alone"
        r1.clock.advance(hold_for(HOOKS, backoff(1)) + 0.1)
        assert await hooks(r1).sweep() == 1, "r0's hold lapsed: r1 takes it"
        await asyncio.wait_for(receiver.taken.wait(), HANG_BOUND)
        await hooks(r1).drain()
        assert await hooks(r1).sweep() == 0, "delivered: owed no more"
    finally:
        await receiver.close()
    first, second = receiver.attempts
    assert (first.taken, second.taken) == (False, True)
    assert first.key == second.key == f"{prompt_id}:completed"
    assert json.loads(second.body)["status"] == "completed"
