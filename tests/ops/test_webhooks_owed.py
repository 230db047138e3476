"""`/metrics` shows how many webhooks are owed (in the outbox, not yet
delivered nor given up on), on each store; while the store cannot answer
the series is left out (an unread count is not 0 owed)."""

from __future__ import annotations

import asyncio
import re

import pytest
from store_support import Outage, Reopen
from support import HANG_BOUND, Pool, PoolFactory, colored
from webhook_support import HOOKS, Receiver

from balancer.webhooks.sender import Webhooks
from balancer.webhooks.setup import WEBHOOKS

OWED = re.compile(r"^comfyui_balancer_webhooks_owed (\S+)$", re.MULTILINE)


async def owed(pool: Pool) -> list[float]:
    """The gauge's value(s) on /metrics (none: the series is absent)."""
    resp = await pool.client.get("/metrics")
    assert resp.status == 200
    return [float(v) for v in OWED.findall(await resp.text())]


@pytest.mark.parametrize("reopen_store", ["memory", "sqlite", "redis"], indirect=True)
async def test_a_webhook_waiting_for_its_retry_counts_as_owed_until_delivered(
    make_pool: PoolFactory, reopen_store: Reopen
) -> None:
    receiver = Receiver(refuse=1)
    retrying, retry = asyncio.Event(), asyncio.Event()

    async def wait_to_retry(seconds: float) -> None:
        retrying.set()
        await retry.wait()

    try:
        url = await receiver.start()
        store = Outage(await reopen_store())
        pool = await make_pool(
            1, settings_overrides={"webhooks": HOOKS}, sleep=wait_to_retry, store=store
        )
        assert await owed(pool) == [0.0]
        await pool.submit(colored(3), extra_data={"webhook": url})
        await asyncio.wait_for(retrying.wait(), HANG_BOUND)  # its first attempt failed
        assert await owed(pool) == [1.0]
        store.down = True
        assert await owed(pool) == [], "unknown while the store does not answer"
        store.down = False
        retry.set()
        await asyncio.wait_for(receiver.taken.wait(), HANG_BOUND)
        hooks: Webhooks = pool.client.app[WEBHOOKS]
        await hooks.drain()
        assert await owed(pool) == [0.0]
    finally:
        await receiver.close()
