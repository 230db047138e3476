"""model_affinity in the late binder: a prompt whose model is on a full
backend waits for it instead of loading it on an idle one, a later prompt
takes the idle one meanwhile, and the wait ends once it has cost what it
saves (counted from when it began to pass up the idle backend)."""

from __future__ import annotations

import asyncio

from support import PoolFactory

from balancer.config.routing_settings import RoutingSettings

from .test_mixed_pool import txt2img

SDXL = "sd_xl_base_1.0.safetensors"
SD15 = "v1-5-pruned-emaonly.safetensors"


async def test_a_prompt_waits_for_its_warm_backend_and_a_later_one_takes_the_idle_one(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2, routing=RoutingSettings(policy="model_affinity"))
    first = (await pool.submit(txt2img(SDXL, 1)))["prompt_id"]
    await pool.settle([first])
    holder = await pool.owner(first)  # SDXL is resident there now
    idle = "gpu1" if holder == "gpu0" else "gpu0"
    pool.emulators[holder].pause()
    running = (await pool.submit(txt2img(SDXL, 2)))["prompt_id"]
    pending = (await pool.submit(txt2img(SDXL, 3)))["prompt_id"]
    assert [await pool.owner(p) for p in (running, pending)] == [holder, holder]

    # The holder is full; loading SDXL on the idle backend would cost 10 s
    # (routing.model_load_estimate), more than the two jobs ahead: it waits.
    warm = (await pool.submit(txt2img(SDXL, 4)))["prompt_id"]
    other = (await pool.submit(txt2img(SD15, 5)))["prompt_id"]
    await pool.probe()
    store = pool.balancer.store
    assert await pool.owner(other) == idle  # needs a load anywhere: takes the idle one
    job = await store.get_job(warm)
    assert job is not None and job.state == "waiting"

    bound = pool.watch("dispatched", warm)
    # It waits longer than the load would take, while rounds keep every
    # reading fresh: one jump of 11 s would leave a moment when every reading
    # is stale, and a wake-up then (the other job's end) finds no backend
    # with room to pass up, which starts its wait over.
    for _ in range(11):
        pool.clock.advance(1.0)
        await pool.probe()
    await asyncio.wait_for(bound.wait(), 10)
    assert await pool.owner(warm) == idle
    pool.emulators[holder].resume()
    await pool.settle([running, pending, warm, other])
