"""Unresponsive is not dead (issue 11, defect 4): a backend that only stops
answering keeps its jobs for `routing.failover_grace`; past it they are sent
elsewhere, and a first run that finishes anyway is counted as a duplicate."""

from __future__ import annotations

import asyncio
from typing import Any

from store_support import Reopen
from support import HeldAnswer, Pool, PoolFactory, StartClient, colored

from balancer.config.backend_settings import ProbeSettings
from balancer.config.routing_settings import RoutingSettings
from tests.ops.ops_helpers import scrape, value

# One failed probe is enough to go down; a hung backend's probes time out
# when the test hangs it (`Pool.hang`), never because the machine is slow.
QUICK = ProbeSettings(unhealthy_after=1)


async def stalled_job(make_pool: PoolFactory, count: int = 2, **kwargs: Any) -> tuple[Pool, str]:
    """gpu0 runs a job (held at its first node) and then stops answering."""
    routing = RoutingSettings(failover_grace=60.0)
    pool = await make_pool(count, probe=QUICK, routing=routing, **kwargs)
    stalled = pool.emulators["gpu0"]
    stalled.pause()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    assert await pool.owner(prompt_id) == "gpu0"
    pool.hang("gpu0")
    return pool, prompt_id


async def past_the_grace(pool: Pool) -> None:
    await pool.probe()  # the first timeout starts the grace
    pool.clock.advance(61.0)
    await pool.probe()  # past it: the job is taken from gpu0


async def held_on_gpu1(pool: Pool, prompt_id: str) -> None:
    """Past the grace the job is sent to gpu1, which holds it (paused)."""
    pool.emulators["gpu1"].pause()
    sent = pool.watch("dispatched", prompt_id)
    await past_the_grace(pool)
    await asyncio.wait_for(sent.wait(), 10.0)
    assert await pool.owner(prompt_id) == "gpu1"


async def duplicated(pool: Pool, backend: str) -> float:
    samples = await scrape(pool)
    return value(samples, "comfyui_balancer_jobs_duplicated_total", backend=backend) or 0.0


async def test_a_stall_shorter_than_the_grace_keeps_the_job_where_it_runs(
    make_pool: PoolFactory,
) -> None:
    pool, prompt_id = await stalled_job(make_pool)
    for _ in range(3):
        pool.clock.advance(19.0)
        await pool.probe()  # timeouts: unresponsive, within the grace
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.backend == "gpu0" and job.attempts == 1, "not sent again"
    gpu0 = pool.emulators["gpu0"]
    pool.hang("gpu0", False)
    gpu0.resume()
    await pool.settle([prompt_id])
    assert gpu0.executed == [prompt_id]
    assert pool.emulators["gpu1"].executed == [], "it ran once"
    assert await duplicated(pool, "gpu0") == 0


async def test_past_the_grace_the_job_runs_elsewhere_and_a_late_first_run_is_counted(
    make_pool: PoolFactory,
) -> None:
    pool, prompt_id = await stalled_job(make_pool)
    await past_the_grace(pool)  # sent to gpu1, which runs it
    await pool.settle([prompt_id])
    entry = await pool.balancer.store.get_history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert pool.emulators["gpu1"].executed == [prompt_id]
    seen = pool.watch("duplicated", prompt_id)
    gpu0 = pool.emulators["gpu0"]
    pool.hang("gpu0", False)
    gpu0.resume()  # the first run goes on and ends too
    await asyncio.wait_for(seen.wait(), 10.0)
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded" and job.backend == "gpu1"
    assert job.duplicates == ("gpu0",), "the second end is recorded on the job"
    assert await pool.balancer.store.get_history(prompt_id) == entry, "the first result stands"
    assert await duplicated(pool, "gpu0") == 1


async def test_a_dead_backend_hands_its_job_over_at_once(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, probe=QUICK, routing=RoutingSettings(failover_grace=600.0))
    dead = pool.emulators["gpu0"]
    dead.pause()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    pool.kill("gpu0")
    await pool.probe()  # no grace for a death
    await pool.settle([prompt_id])
    assert pool.emulators["gpu1"].executed == [prompt_id]


async def test_a_job_past_the_grace_is_followed_again_where_it_still_runs(
    make_pool: PoolFactory,
) -> None:
    """The only backend stalls past the grace while running a job, then
    answers again with the job still running: the balancer follows it there
    instead of sending it a second time, and it runs once."""
    pool, prompt_id = await stalled_job(make_pool, 1)
    await past_the_grace(pool)  # waiting again, nowhere to go
    gpu0 = pool.emulators["gpu0"]
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "waiting" and job.lost_from == ("gpu0",)
    pool.hang("gpu0", False)
    await pool.probe()  # back, still running it
    gpu0.resume()
    await pool.settle([prompt_id])
    await pool.wait_idle()
    assert gpu0.executed == [prompt_id], "it ran once"
    assert await duplicated(pool, "gpu0") == 0


async def test_a_late_first_run_is_counted_across_a_balancer_restart(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    """As above, but the balancer restarts before the stalled backend's run
    ends: that run's events go to the old balancer's channel, so the new one
    finds the run in the backend's queue and its end in the history."""
    pool, prompt_id = await stalled_job(make_pool, store=await reopen_store())
    await past_the_grace(pool)  # sent to gpu1, which runs it
    await pool.settle([prompt_id])
    gpu0 = pool.emulators["gpu0"]
    pool.hang("gpu0", False)
    again = await pool.restarted(aiohttp_client, reopen_store)
    seen = again.watch("duplicated", prompt_id)
    gpu0.resume()  # the first run goes on and ends
    await gpu0.wait_idle(10.0)
    await again.probe()
    await asyncio.wait_for(seen.wait(), 10.0)
    job = await again.balancer.store.get_job(prompt_id)
    assert job is not None and job.backend == "gpu1" and job.duplicates == ("gpu0",)
    assert await duplicated(again, "gpu0") == 1


async def test_a_run_left_behind_when_an_earlier_run_ends_the_job_is_still_read(
    make_pool: PoolFactory,
) -> None:
    """Past the grace the job runs on gpu1; gpu1 ends it unseen (its HTTP
    stalls and its channel is down), then gpu0's first run ends and stands.
    gpu1's run, left behind, is read once gpu1 answers: a duplicate."""
    pool, prompt_id = await stalled_job(make_pool)
    gpu0, gpu1 = pool.emulators["gpu0"], pool.emulators["gpu1"]
    await held_on_gpu1(pool, prompt_id)
    pool.hang("gpu1")
    gpu1.hub.abort_all()  # its channel drops, and cannot come back while it stalls
    gpu1.resume()
    await gpu1.wait_idle(10.0)
    pool.hang("gpu0", False)
    gpu0.resume()
    await pool.done(prompt_id)
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.backend == "gpu0", "the first end to be read stands"
    seen = pool.watch("duplicated", prompt_id)
    pool.hang("gpu1", False)
    await pool.probe()
    await asyncio.wait_for(seen.wait(), 10.0)
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.duplicates == ("gpu1",)
    assert gpu0.executed == gpu1.executed == [prompt_id]


async def test_a_job_is_not_sent_where_it_ran_while_that_run_is_being_read(
    make_pool: PoolFactory,
) -> None:
    """The only backend finishes the job unseen while it stalls, past the
    grace. When it answers again (its queue empty), the balancer reads that
    run's end; until it has, the job is not sent there again (a second run)."""
    held = HeldAnswer("GET", "")
    pool, prompt_id = await stalled_job(make_pool, 1, middlewares=(held.middleware(),))
    await past_the_grace(pool)  # waiting again, nowhere else to go
    gpu0 = pool.emulators["gpu0"]
    gpu0.hub.abort_all()  # its channel drops, and cannot come back while it stalls
    gpu0.resume()  # the run ends unseen
    await gpu0.wait_idle(10.0)
    held.path, held.armed = f"/history/{prompt_id}", True
    pool.hang("gpu0", False)
    probing = asyncio.ensure_future(pool.probe())  # gpu0 is back: the run's end is read
    try:
        await asyncio.wait_for(held.served.wait(), 10.0)  # the end is being read
        await pool.channels_up(["gpu0"])  # gpu0 is a place to send jobs again
        await pool.bind()
        job = await pool.balancer.store.get_job(prompt_id)
        assert job is not None and job.state == "waiting", "not sent again meanwhile"
    finally:
        held.release.set()
    await probing
    await pool.settle([prompt_id])
    await pool.wait_idle()
    assert gpu0.executed == [prompt_id], "it ran once"
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded" and job.duplicates == ()
