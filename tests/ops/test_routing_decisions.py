"""`routing_decisions_total`: one decision per prompt; a real re-route is
counted once more, as `rerouted`."""

from __future__ import annotations

from support import Pool, PoolFactory, colored

from balancer.config.routing_settings import RoutingSettings

from .ops_helpers import EventWaiter, scrape

P = "comfyui_balancer_routing_decisions_total"


async def decisions(pool: Pool) -> dict[str, float]:
    samples = await scrape(pool)
    return {dict(labels)["outcome"]: v for (name, labels), v in samples.items() if name == P}


async def test_one_prompt_on_an_idle_pool_is_one_decision(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    await pool.settle([prompt_id])
    for _ in range(3):  # probes wake the binder and the work stealer: looks, not decisions
        await pool.probe()
    assert await decisions(pool) == {"chosen": 1}


async def test_jobs_of_a_lost_backend_count_once_more_as_rerouted(make_pool: PoolFactory) -> None:
    # Without work stealing, so every re-route here is a failover ("retried").
    pool = await make_pool(2, routing=RoutingSettings(work_stealing=False))
    waiter = EventWaiter(pool)
    lost = pool.emulators["gpu0"]
    lost.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(6)]
    pool.kill("gpu0")
    for _ in range(3):
        await pool.probe()  # down: the jobs it held go to gpu1
    await pool.settle(ids)
    retried = waiter.count("retried")
    assert retried > 0
    assert await decisions(pool) == {"chosen": 6, "rerouted": retried}
