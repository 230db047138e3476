"""A run that ends while its backend's HTTP is stalled (its channel still
speaks) cannot be read at once. If the job then fails over and runs
elsewhere, the first run's end is read once the stalled backend answers a
probe again, and recorded: here as a duplicate run, never silently lost."""

from __future__ import annotations

import asyncio

from support import HANG_BOUND, PoolFactory, colored

from balancer.config.model import ProbeSettings, RoutingSettings
from tests.ops.ops_helpers import scrape, value


async def test_a_run_that_ended_unread_before_its_failover_is_recorded_later(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(
        2, probe=ProbeSettings(unhealthy_after=1), routing=RoutingSettings(failover_grace=60.0)
    )
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    ws = await pool.client.ws_connect("/ws?clientId=c")
    prompt_id = (await pool.submit(colored(1), client_id="c"))["prompt_id"]
    assert await pool.owner(prompt_id) == "gpu0"
    pool.hang("gpu0")
    gpu0.resume()  # the run ends; its history cannot be read now
    end = {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}
    while await ws.receive_json(timeout=HANG_BOUND) != end:
        pass  # until the channel tells the end (so the balancer tried to read it)
    await pool.probe()  # the first timeout starts the grace
    pool.clock.advance(61.0)
    await pool.probe()  # past it: sent to gpu1, which runs it
    await pool.settle([prompt_id])
    assert pool.emulators["gpu1"].executed == [prompt_id]
    assert gpu0.executed == [prompt_id], "it ran on both"
    seen = pool.watch("duplicated", prompt_id)
    pool.hang("gpu0", False)
    await pool.probe()  # gpu0 answers again: its run's end is read now
    await asyncio.wait_for(seen.wait(), HANG_BOUND)
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded" and job.duplicates == ("gpu0",)
    samples = await scrape(pool)
    assert value(samples, "comfyui_balancer_jobs_duplicated_total", backend="gpu0") == 1
    await ws.close()
