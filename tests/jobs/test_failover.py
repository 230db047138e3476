"""Nothing accepted is lost: backend crashes, restarts, losses, balancer restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from store_support import Reopen
from support import HANG_BOUND, Pool, PoolFactory, StartClient, colored

from balancer.app import create_app
from balancer.config.routing_settings import RoutingSettings
from balancer.upstream import UpstreamError


async def successes(pool: Pool, ids: list[str]) -> int:
    kept = [await pool.balancer.store.get_history(i) for i in ids]
    return sum(1 for e in kept if e and e["status"]["status_str"] == "success")


async def test_a_backend_crash_mid_burst_loses_nothing(make_pool: PoolFactory) -> None:
    pool = await make_pool(3)
    crashing = pool.emulators["gpu0"]
    crashing.pause()  # its jobs are held when it dies
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(50)]
    held = [await pool.balancer.store.get_job(i) for i in ids]
    assert any(job is not None and job.backend == "gpu0" for job in held)
    await crashing.crash()  # SIGKILL + restart: its queue, running job and history are gone
    crashing.resume()
    await pool.settle(ids)
    assert await successes(pool, ids) == 50


async def test_a_lost_backend_hands_its_jobs_to_the_others(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    lost = pool.emulators["gpu0"]
    lost.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(6)]
    pool.kill("gpu0")
    for _ in range(3):
        await pool.probe()  # three failures: down, and its jobs go back to the queue
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and not gpu0.healthy
    await pool.settle(ids)
    assert await successes(pool, ids) == 6
    assert all([await pool.owner(i) == "gpu1" for i in ids])


async def test_a_job_lost_too_often_fails_visibly(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, routing=RoutingSettings(max_attempts=2))
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    redispatched = pool.watch("dispatched", prompt_id)
    await emulator.crash()
    await pool.probe()  # lost once: queued again, sent again once the channel is back
    await asyncio.wait_for(redispatched.wait(), HANG_BOUND)
    await emulator.crash()
    await pool.probe()  # lost twice: that is max_attempts
    entry = await pool.balancer.store.get_history(prompt_id)
    assert entry is not None and entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][1]["exception_type"] == "job_lost"
    history = await (await pool.client.get(f"/history/{prompt_id}")).json()
    assert history[prompt_id]["status"]["status_str"] == "error"


async def test_balancer_restart_with_a_hundred_jobs_queued_loses_none_and_runs_none_twice(
    make_pool: PoolFactory, aiohttp_client: Any, reopen_store: Reopen
) -> None:
    pool = await make_pool(2)
    settings = pool.balancer.settings
    kept = await reopen_store()
    first: TestClient = await aiohttp_client(  # type: ignore[type-arg]
        create_app(settings, clock=pool.clock, run_prober=False, store=kept, deadline=pool.stalls)
    )
    for emulator in pool.emulators.values():
        emulator.pause()
    first_pool = Pool(first, pool.emulators, pool.servers, pool.clock, pool.stalls)
    await first_pool.channels_up(list(pool.emulators))
    await first_pool.probe()
    ids = [(await first_pool.submit(colored(i)))["prompt_id"] for i in range(100)]
    assert len(first_pool.balancer.jobs.queue) == 96  # 2 per backend were sent at once
    await first.close()  # the balancer stops; the backends keep their 4 jobs

    second: TestClient = await aiohttp_client(  # type: ignore[type-arg]
        create_app(
            settings,
            clock=pool.clock,
            run_prober=False,
            store=await reopen_store(),
            deadline=pool.stalls,
        )
    )
    again = Pool(second, pool.emulators, pool.servers, pool.clock, pool.stalls)
    await again.channels_up(list(pool.emulators))
    assert len(again.balancer.jobs.queue) == 96
    for emulator in pool.emulators.values():
        emulator.resume()
    await again.settle(ids)
    assert await successes(again, ids) == 100
    runs = [i for e in pool.emulators.values() for i in e.executed]
    assert sorted(runs) == sorted(ids), "each job ran exactly once"
    await second.close()  # before its store closes


async def test_a_failed_history_fetch_does_not_run_a_finished_job_again(
    make_pool: PoolFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = await make_pool(1)
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    emulator.hub.abort_all()  # the end events are lost with the channel
    emulator.resume()
    await emulator.wait_idle(HANG_BOUND)
    upstream = pool.balancer.upstream
    real = upstream.get_json

    async def history_down(url: str, **kw: Any) -> Any:
        if "/history/" in url:
            raise UpstreamError("connection reset")
        return await real(url, **kw)

    monkeypatch.setattr(upstream, "get_json", history_down)
    await pool.probe()  # the job is gone from the queue; its history cannot be read
    assert await pool.balancer.store.get_job(prompt_id) is not None, "still followed, not requeued"
    monkeypatch.setattr(upstream, "get_json", real)
    await pool.settle([prompt_id])
    assert emulator.executed == [prompt_id], "ran once"


async def test_a_job_being_moved_when_the_balancer_stops_still_runs_once(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    """The balancer stops while it is taking a queued job back from its
    backend (work stealing, or a removal not yet answered). The next start
    follows the job on that backend again: it runs, once, and ends."""
    pool = await make_pool(1, store=await reopen_store())
    pool.emulators["gpu0"].pause()
    first, second = [(await pool.submit(colored(i)))["prompt_id"] for i in range(2)]
    assert await pool.balancer.jobs.recalling(second) is not None  # the stop cuts it short
    again = await pool.restarted(aiohttp_client, reopen_store)
    pool.emulators["gpu0"].resume()
    await again.settle([first, second])
    assert pool.emulators["gpu0"].executed.count(second) == 1
