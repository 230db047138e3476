"""A job's client is told its end as soon as its backend tells it, before
the balancer has fetched and kept the history entry; whatever that client
reads or deletes next already sees the job done."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from support import Pool, PoolFactory, colored


class HeldEnd:
    """The balancer's own record of a job's end held until `release`, and
    `asked` set once a request waits for that record."""

    def __init__(self, pool: Pool) -> None:
        self.gate, self.asked = asyncio.Event(), asyncio.Event()
        store, follower = pool.balancer.store, pool.balancer.follower
        keep, wait = store.put_history, follower.ends.recorded

        async def held_put_history(prompt_id: str, entry: Any) -> None:
            await self.gate.wait()
            await keep(prompt_id, entry)

        async def recorded(prompt_ids: Collection[str] | None, timeout: float) -> None:
            self.asked.set()
            await wait(prompt_ids, timeout)

        store.put_history = held_put_history  # type: ignore[method-assign]
        follower.ends.recorded = recorded  # type: ignore[method-assign]

    async def release_when_asked(self) -> None:
        await asyncio.wait_for(self.asked.wait(), 30.0)  # bounds a hang only
        self.gate.set()


async def told_end(pool: Pool) -> str:
    """A job run for client c, returned once c was told it ended."""
    ws = await pool.client.ws_connect("/ws?clientId=c")
    prompt_id: str = (await pool.submit(colored(7), client_id="c"))["prompt_id"]
    end = {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}
    while await ws.receive_json(timeout=30.0) != end:
        pass
    await ws.close()
    return prompt_id


async def test_the_end_is_told_before_it_is_kept_and_reads_show_it_done(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    held = HeldEnd(pool)
    prompt_id = await told_end(pool)
    store = pool.balancer.store
    assert await store.get_history(prompt_id) is None  # told first, not kept yet
    history = await (await pool.client.get(f"/history/{prompt_id}")).json()
    images = history[prompt_id]["outputs"]["3"]["images"]
    assert images[0]["subfolder"] == "@gpu0"  # the backend's entry, as the balancer shows it
    job = asyncio.ensure_future(pool.client.get(f"/api/jobs/{prompt_id}"))
    await held.release_when_asked()
    detail = await (await job).json()
    assert detail["status"] == "completed"
    assert detail["outputs"]["3"]["images"][0]["subfolder"] == "@gpu0"
    await pool.done(prompt_id)
    kept = await (await pool.client.get(f"/history/{prompt_id}")).json()
    assert kept[prompt_id]["outputs"] == history[prompt_id]["outputs"]


async def test_a_told_end_deleted_before_it_is_kept_stays_deleted(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    held = HeldEnd(pool)
    prompt_id = await told_end(pool)
    delete = asyncio.ensure_future(pool.client.post("/history", json={"delete": [prompt_id]}))
    await held.release_when_asked()
    assert (await delete).status == 200
    assert prompt_id not in await (await pool.client.get("/history")).json()
    assert await (await pool.client.get(f"/history/{prompt_id}")).json() == {}
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded"  # not taken for lost and run again
