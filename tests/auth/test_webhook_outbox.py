"""Webhooks are owed in the store from the move that ends their job: one
not delivered when the balancer stops is sent after it starts again, once,
with the same Idempotency-Key; with the memory store it is lost, and logged."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from store_support import Outage, Reopen
from structlog.testing import capture_logs
from support import HANG_BOUND, Pool, PoolFactory, StartClient, colored
from webhook_support import HOOKS, Receiver

from balancer.webhooks import sender
from balancer.webhooks.sender import Webhooks
from balancer.webhooks.setup import WEBHOOKS

DURABLE = pytest.mark.parametrize("reopen_store", ["sqlite", "redis"], indirect=True)


def hooks(pool: Pool) -> Webhooks:
    return pool.client.app[WEBHOOKS]  # type: ignore[index, no-any-return]


async def cut_after_a_failed_attempt(
    make_pool: PoolFactory, receiver: Receiver, **pool_args: Any
) -> tuple[Pool, str]:
    """A pool whose one job's webhook failed once and waits to be retried
    (that wait never ends) when the balancer stops; the shutdown's deadline
    passes at once. The pool (stopped) and the job's id."""
    retrying = asyncio.Event()

    async def wait_to_retry(seconds: float) -> None:
        retrying.set()
        await asyncio.Event().wait()

    async def deadline_passes(seconds: float) -> None:
        pass

    url = await receiver.start()
    pool = await make_pool(
        1,
        settings_overrides={"webhooks": HOOKS},
        sleep=wait_to_retry,
        shutdown_timer=deadline_passes,
        **pool_args,
    )
    prompt_id = (await pool.submit(colored(3), extra_data={"webhook": url}))["prompt_id"]
    await asyncio.wait_for(retrying.wait(), HANG_BOUND)
    assert [a.taken for a in receiver.attempts] == [False]
    return pool, prompt_id


async def delivered_once_after_restart(receiver: Receiver, again: Pool, prompt_id: str) -> None:
    """The restarted balancer sent the webhook a second time, taken, with the
    first attempt's Idempotency-Key and body, and owes it no more."""
    await asyncio.wait_for(receiver.taken.wait(), HANG_BOUND)
    await hooks(again).drain()
    first, second = receiver.attempts
    assert second.taken and first.key == second.key == f"{prompt_id}:completed"
    assert first.body == second.body and json.loads(second.body)["prompt_id"] == prompt_id
    store = again.balancer.store
    assert await store.claim_owed("anyone", 1e12, 1e12, mine=True) == [], "delivered: owed no more"


@DURABLE
async def test_a_webhook_cut_at_shutdown_arrives_once_after_the_restart(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    receiver = Receiver(refuse=1)
    try:
        pool, prompt_id = await cut_after_a_failed_attempt(
            make_pool, receiver, store=await reopen_store()
        )
        with capture_logs() as logs:
            again = await pool.restarted(aiohttp_client, reopen_store)
        assert ("webhook_kept", prompt_id) in [(e["event"], e.get("prompt_id")) for e in logs]
        await delivered_once_after_restart(receiver, again, prompt_id)
    finally:
        await receiver.close()


@DURABLE
async def test_a_webhook_owed_by_a_killed_balancer_arrives_once_after_the_restart(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    """Killed (SIGKILL: nothing it does from then on reaches its store)
    while it waits to retry: the restart sends the webhook."""
    receiver = Receiver(refuse=1)
    try:
        pool, prompt_id = await cut_after_a_failed_attempt(
            make_pool, receiver, store=Outage(await reopen_store())
        )
        again = await pool.restarted(aiohttp_client, reopen_store, killed=True)
        await delivered_once_after_restart(receiver, again, prompt_id)
    finally:
        await receiver.close()


async def test_with_the_memory_store_a_webhook_cut_at_shutdown_is_logged_as_lost(
    make_pool: PoolFactory,
) -> None:
    receiver = Receiver(refuse=1)
    try:
        pool, prompt_id = await cut_after_a_failed_attempt(make_pool, receiver)
        with capture_logs() as logs:
            await pool.client.close()
    finally:
        await receiver.close()
    assert ("webhook_undelivered", prompt_id) in [(e["event"], e.get("prompt_id")) for e in logs]


async def test_webhooks_past_the_bound_wait_in_the_outbox_and_each_arrives_once(
    make_pool: PoolFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender, "MAX_IN_FLIGHT", 1)
    release = asyncio.Event()
    receiver = Receiver(hold=release, expect=3)
    ids = [f"0f0e0d0c-0b0a-4900-8800-00000000000{i}" for i in range(3)]
    try:
        url = await receiver.start()
        pool = await make_pool(1, settings_overrides={"webhooks": HOOKS})
        with capture_logs() as logs:
            await pool.submit(colored(0), prompt_id=ids[0], extra_data={"webhook": url})
            await asyncio.wait_for(receiver.tried.wait(), HANG_BOUND)  # the one in flight, held
            for i, prompt_id in enumerate(ids[1:], 1):
                ended = pool.watch("completed", prompt_id)
                await pool.submit(colored(i), prompt_id=prompt_id, extra_data={"webhook": url})
                await asyncio.wait_for(ended.wait(), HANG_BOUND)
            release.set()
            await asyncio.wait_for(receiver.taken.wait(), HANG_BOUND)
            await hooks(pool).drain()
    finally:
        await receiver.close()
    assert sorted(a.key for a in receiver.attempts) == [f"{p}:completed" for p in ids]
    waited = {e["prompt_id"] for e in logs if e["event"] == "webhook_waiting"}
    assert waited == set(ids[1:])
