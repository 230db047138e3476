"""A run that ends while its backend's HTTP is stalled (its channel still
speaks) cannot be read at once, but its client was told its end. Past the
grace that job is not sent elsewhere (it ran, and its client heard it end,
so a second run would tell a second end): it ends as an error, its outputs
lost with that backend, never silently and never run twice."""

from __future__ import annotations

from support import HANG_BOUND, PoolFactory, colored

from balancer.config.model import ProbeSettings, RoutingSettings
from tests.jobs.test_told_once import about
from tests.proxy.test_ws import connect


async def test_a_run_told_ended_but_unread_past_the_grace_is_not_run_again(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(
        2, probe=ProbeSettings(unhealthy_after=1), routing=RoutingSettings(failover_grace=60.0)
    )
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    sock = await connect(pool, "c")
    prompt_id = (await pool.submit(colored(1), client_id="c"))["prompt_id"]
    assert await pool.owner(prompt_id) == "gpu0"
    pool.hang("gpu0")
    gpu0.resume()  # the run ends; its history cannot be read now
    told = await sock.until_done(prompt_id, HANG_BOUND)  # the channel tells the end
    assert about(told, prompt_id)[-2:] == ["execution_success", "executing"]
    await pool.probe()  # the first timeout starts the grace
    pool.clock.advance(61.0)
    await pool.probe()  # past it: its outputs are taken for lost
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "failed" and job.backend == "gpu0"
    entry = await pool.balancer.store.get_history(prompt_id)
    assert entry is not None and entry["status"]["status_str"] == "error"
    assert "lost with gpu0" in str(entry["status"]["messages"])
    pool.hang("gpu0", False)
    await pool.probe()  # gpu0 answers again: nothing more of that job
    later = (await pool.submit(colored(2), client_id="c"))["prompt_id"]
    frames = await sock.until_done(later, HANG_BOUND)
    assert about(frames, prompt_id) == [], "no second run, no second end"
    assert prompt_id not in pool.emulators["gpu1"].executed and gpu0.executed.count(prompt_id) == 1
    await sock.ws.close()
