"""A run left on a backend a job was taken from (failover past the grace)
that ends while no balancer listens is still read after a restart: what
the last balancer knew of such runs went with it, and the store says where
the job was taken from. Found by the lifecycle property test
(STATEFUL_SEED=14): the run's end was never read, so the job was sent to
that backend again and ran three times with one duplicate counted."""

from __future__ import annotations

import asyncio

import pytest
from store_support import Reopen
from support import Pool, PoolFactory, StartClient

from balancer.store import Store
from tests.jobs.test_stall import held_on_gpu1, past_the_grace, stalled_job


async def restarted_after_the_late_run(pool: Pool, start: StartClient, reopen: Reopen) -> Pool:
    """The balancer stops; gpu0, answering again, ends the run it kept
    (held until now); then a new balancer starts on the same store."""
    gpu0 = pool.emulators["gpu0"]
    pool.hang("gpu0", False)

    async def reopen_once_it_ended() -> Store:
        gpu0.resume()
        await gpu0.wait_idle(10.0)
        return await reopen()

    return await pool.restarted(start, reopen_once_it_ended)


@pytest.mark.parametrize("reopen_store", ["sqlite"], indirect=True)
async def test_a_late_run_that_ended_during_a_restart_is_the_jobs_end(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    """The job waits on gpu1 when the run it was taken from ends on gpu0:
    that first end is the job's (it is not sent anywhere again), and gpu1's
    run, once it ends, is the recorded duplicate."""
    pool, prompt_id = await stalled_job(make_pool, store=await reopen_store())
    gpu0, gpu1 = pool.emulators["gpu0"], pool.emulators["gpu1"]
    await held_on_gpu1(pool, prompt_id)
    again = await restarted_after_the_late_run(pool, aiohttp_client, reopen_store)
    await again.probe()  # a probe reads gpu0's end (the one at start already did)
    job = await again.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded" and job.backend == "gpu0"
    seen = again.watch("duplicated", prompt_id)
    gpu1.resume()
    await gpu1.wait_idle(10.0)
    await again.probe()
    await asyncio.wait_for(seen.wait(), 10.0)
    job = await again.balancer.store.get_job(prompt_id)
    assert job is not None and job.duplicates == ("gpu1",), "the second run is counted"
    assert gpu0.executed == [prompt_id] and gpu1.executed == [prompt_id], "two runs, no third"


@pytest.mark.parametrize("reopen_store", ["sqlite"], indirect=True)
async def test_a_late_run_of_an_ended_job_that_ended_during_a_restart_is_counted(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    """The job has ended on gpu1; the run it was taken from on gpu0 ends
    while the balancer restarts: it is recorded as the job's duplicate."""
    pool, prompt_id = await stalled_job(make_pool, store=await reopen_store())
    await past_the_grace(pool)  # sent to gpu1, which runs it
    await pool.settle([prompt_id])
    entry = await pool.balancer.store.get_history(prompt_id)
    again = await restarted_after_the_late_run(pool, aiohttp_client, reopen_store)
    await again.probe()  # a probe reads the end (the one at start already did)
    job = await again.balancer.store.get_job(prompt_id)
    assert job is not None and job.backend == "gpu1" and job.duplicates == ("gpu0",)
    assert await again.balancer.store.get_history(prompt_id) == entry, "the first end stands"
