"""A removal reaches the run failover left behind (issue 11): a job taken
from a backend that stalled past the grace may still have its first run
there. Deleting or cancelling it asks that backend too; the answer claims
`cancelled` only when no run of it is left anywhere."""

from __future__ import annotations

from typing import Any

from support import Pool, PoolFactory, colored

from tests.jobs.test_stall import past_the_grace, stalled_job


async def status(pool: Pool, prompt_id: str) -> str:
    return str((await (await pool.client.get(f"/api/jobs/{prompt_id}")).json())["status"])


async def history(pool: Pool, prompt_id: str) -> dict[str, Any]:
    entries: dict[str, Any] = await (await pool.client.get(f"/history/{prompt_id}")).json()
    return entries


async def back_and_finish(pool: Pool, ids: list[str]) -> None:
    """gpu0 answers and works again; every job in `ids` ends."""
    pool.hang("gpu0", False)
    pool.emulators["gpu0"].resume()
    await pool.settle(ids)
    await pool.wait_idle()


async def test_a_delete_of_a_job_whose_first_run_still_goes_leaves_it_running(
    make_pool: PoolFactory,
) -> None:
    pool, prompt_id = await stalled_job(make_pool, 1)
    await past_the_grace(pool)  # waiting again; gpu0 still runs it
    pool.hang("gpu0", False)
    resp = await pool.client.post("/queue", json={"delete": [prompt_id]})
    assert resp.status == 200
    assert await status(pool, prompt_id) != "cancelled", "a running job is not deleted"
    await back_and_finish(pool, [prompt_id])
    assert pool.emulators["gpu0"].executed == [prompt_id], "it ran once"
    assert await status(pool, prompt_id) == "completed"


async def test_a_deleted_job_still_queued_where_it_stalled_never_runs(
    make_pool: PoolFactory,
) -> None:
    pool, running = await stalled_job(make_pool, 1)
    pool.hang("gpu0", False)
    queued = (await pool.submit(colored(2)))["prompt_id"]  # held behind it on gpu0
    assert await pool.owner(queued) == "gpu0"
    pool.hang("gpu0")
    await past_the_grace(pool)  # both taken from gpu0, which still holds both
    pool.hang("gpu0", False)
    resp = await pool.client.post("/queue", json={"delete": [queued]})
    assert resp.status == 200
    assert await status(pool, queued) == "cancelled"
    await back_and_finish(pool, [running])
    assert queued not in pool.emulators["gpu0"].executed, "the deleted one never ran"
    assert running in pool.emulators["gpu0"].executed
    assert await history(pool, queued) == {}


async def test_a_delete_that_cannot_reach_the_stalled_backend_claims_nothing(
    make_pool: PoolFactory,
) -> None:
    pool, running = await stalled_job(make_pool, 1)
    pool.hang("gpu0", False)
    queued = (await pool.submit(colored(2)))["prompt_id"]
    pool.hang("gpu0")
    await past_the_grace(pool)
    resp = await pool.client.post("/queue", json={"delete": [queued]})  # gpu0 still silent
    assert resp.status == 200
    assert await status(pool, queued) != "cancelled", "it may still run on gpu0"
    await back_and_finish(pool, [running, queued])
    assert queued in pool.emulators["gpu0"].executed
    assert queued in await history(pool, queued), "it ran, and its end is shown"


async def test_cancel_interrupts_the_first_run_where_it_still_goes(
    make_pool: PoolFactory,
) -> None:
    pool, prompt_id = await stalled_job(make_pool, 1)
    await past_the_grace(pool)
    pool.hang("gpu0", False)
    resp = await pool.client.post(f"/api/jobs/{prompt_id}/cancel")
    assert await resp.json() == {"cancelled": True}
    await back_and_finish(pool, [prompt_id])
    entry = (await history(pool, prompt_id))[prompt_id]
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert pool.emulators["gpu0"].executed == [prompt_id], "it ran once, cut short"
