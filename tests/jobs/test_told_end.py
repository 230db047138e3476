"""A job's client is told its end as soon as its backend tells it, before
the balancer has fetched and kept the history entry; whatever that client
reads next already shows the job done."""

from __future__ import annotations

import asyncio
from typing import Any

from support import PoolFactory, colored


async def test_the_end_is_told_before_it_is_kept_and_reads_show_it_done(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    store = pool.balancer.store
    keep, gate = store.put_history, asyncio.Event()

    async def held_put_history(prompt_id: str, entry: Any) -> None:
        await gate.wait()  # the balancer's own record waits until the test reads
        await keep(prompt_id, entry)

    store.put_history = held_put_history  # type: ignore[method-assign]
    ws = await pool.client.ws_connect("/ws?clientId=c")
    prompt_id = (await pool.submit(colored(7), client_id="c"))["prompt_id"]
    end = {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}
    while await ws.receive_json(timeout=10.0) != end:
        pass
    assert await store.get_history(prompt_id) is None  # told first, not kept yet
    history = await (await pool.client.get(f"/history/{prompt_id}")).json()
    images = history[prompt_id]["outputs"]["3"]["images"]
    assert images[0]["subfolder"] == "@gpu0"  # the backend's entry, as the balancer shows it
    job = asyncio.ensure_future(pool.client.get(f"/api/jobs/{prompt_id}"))
    gate.set()
    detail = await (await job).json()
    assert detail["status"] == "completed"
    assert detail["outputs"]["3"]["images"][0]["subfolder"] == "@gpu0"
    await pool.done(prompt_id)
    kept = await (await pool.client.get(f"/history/{prompt_id}")).json()
    assert kept[prompt_id]["outputs"] == history[prompt_id]["outputs"]
    await ws.close()
