"""GET /queue when a backend gives no answer: unknown is not idle. The jobs
the balancer sent there and has not seen end are still listed (from its own
records), never dropped as if that backend's queue were empty."""

from __future__ import annotations

from support import Pool, PoolFactory, colored

from balancer.config.routing_settings import RoutingSettings


async def held_jobs(make_pool: PoolFactory) -> tuple[Pool, dict[str, str]]:
    """Two paused backends with two jobs each (one running, one pending);
    prompt_id -> its backend."""
    pool = await make_pool(2, routing=RoutingSettings(max_pending_per_backend=None))
    for emulator in pool.emulators.values():
        emulator.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    await pool.probe()
    return pool, {prompt_id: await pool.owner(prompt_id) for prompt_id in ids}


async def queue_of(pool: Pool) -> tuple[set[str], set[str]]:
    queue = await (await pool.client.get("/queue")).json()
    return ({item[1] for item in queue["queue_running"]},
            {item[1] for item in queue["queue_pending"]})  # fmt: skip


async def test_a_backend_that_does_not_answer_keeps_its_jobs_listed(
    make_pool: PoolFactory,
) -> None:
    pool, owners = await held_jobs(make_pool)
    before = await queue_of(pool)
    assert before[0] | before[1] == set(owners) and len(before[0]) == 2
    pool.hang("gpu1")
    await pool.client.post("/free", json={})  # a write: no answer kept from before holds
    assert pool.balancer.registry.get("gpu1").healthy  # type: ignore[union-attr]
    assert await queue_of(pool) == before, "gpu1's jobs as the balancer last knew them"
