"""A run that ends while its backend's HTTP is stalled (its channel still
speaks) cannot be read at once, but its client was told its end. Past the
grace that job is not sent elsewhere (it ran, and its client heard it end,
so a second run would tell a second end), nor taken for lost: the backend is
unresponsive, not dead, and its outputs are there. It is read, and succeeds,
when the backend answers again."""

from __future__ import annotations

from support import HANG_BOUND, PoolFactory, colored

from balancer.config.backend_settings import ProbeSettings
from balancer.config.routing_settings import RoutingSettings
from tests.jobs.test_told_once import about
from tests.proxy.test_ws import connect


async def test_a_run_told_ended_but_unread_past_the_grace_waits_for_its_backend(
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
    await pool.probe()  # past it: not moved, not failed
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and not job.finished and job.backend == "gpu0"
    pool.hang("gpu0", False)
    await pool.settle([prompt_id])  # gpu0 answers again: its run's end is read
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded" and job.backend == "gpu0"
    entry = await pool.balancer.store.get_history(prompt_id)
    assert entry is not None and entry["status"]["status_str"] == "success"
    assert entry["outputs"], "gpu0's outputs, read after the stall"
    later = (await pool.submit(colored(2), client_id="c"))["prompt_id"]
    frames = await sock.until_done(later, HANG_BOUND)
    assert about(frames, prompt_id) == [], "no second run, no second end"
    assert prompt_id not in pool.emulators["gpu1"].executed and gpu0.executed.count(prompt_id) == 1
    await sock.ws.close()
