"""A drain ends (a removed backend leaves, `free_on_drain` unloads) once the
backend is empty by its newest reading, probe or `status` push: at its push
that says its last job ended, not at its next probe; and never on a reading
that is stale, or older than a push that says it holds something."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from support import HANG_BOUND, Pool, PoolFactory, colored, workflow

from balancer.backends.state import Backend

STALE_AFTER = 5.0  # ProbeSettings' default, which make_pool uses


async def until(check: Callable[[], bool], what: str) -> None:
    """Turn by turn until `check()`, without any probe; the bound only
    stops a hang (the old code waited for a probe that never came)."""
    try:
        async with asyncio.timeout(HANG_BOUND):
            while not check():
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(what) from None


def backend(pool: Pool, name: str) -> Backend:
    found = pool.balancer.registry.get(name)
    assert found is not None
    return found


async def post_directly(pool: Pool, name: str) -> None:
    """A prompt posted to a backend directly, not through the balancer."""
    async with aiohttp.ClientSession() as session:
        url = pool.servers[name].make_url("/prompt")
        async with session.post(url, json={"prompt": colored(1)}) as resp:
            assert resp.status == 200


async def test_a_removed_backend_leaves_once_its_last_jobs_end_is_pushed(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2)
    pool.emulators["gpu1"].pause()
    await pool.client.post("/balancer/backends/gpu0/drain")
    job = (await pool.submit(colored(7)))["prompt_id"]
    assert await pool.owner(job) == "gpu1"
    await pool.probe()  # its last probe: the job queued there
    assert (await pool.client.delete("/balancer/backends/gpu1")).status == 202
    assert pool.balancer.registry.get("gpu1") is not None, "busy: it stays"

    pool.clock.advance(0.001)  # its pushes come after that probe
    pool.emulators["gpu1"].resume()  # no probe from here on: its pushes tell
    await until(lambda: pool.balancer.registry.get("gpu1") is None, "never left")
    entry = await pool.balancer.store.get_history(job)
    assert entry is not None, "its job's end was read before its channel closed"


async def test_a_removed_backend_stays_while_its_newest_push_says_it_holds_a_prompt(
    make_pool: PoolFactory,
) -> None:
    """Its last probe showed an empty queue; a push since says otherwise."""
    pool = await make_pool(2)
    gpu1 = backend(pool, "gpu1")
    assert gpu1.snapshot is not None and gpu1.snapshot.queue_size == 0
    pool.emulators["gpu1"].pause()
    pool.clock.advance(0.001)  # its push comes after that probe
    await post_directly(pool, "gpu1")
    await until(lambda: gpu1.queue_size() == 1, "its push never came")

    assert (await pool.client.delete("/balancer/backends/gpu1")).status == 202
    assert pool.balancer.registry.get("gpu1") is gpu1, "it holds a prompt: it stays"

    pool.emulators["gpu1"].resume()
    await until(lambda: pool.balancer.registry.get("gpu1") is None, "never left")


async def test_a_stale_reading_never_ends_a_drain(make_pool: PoolFactory) -> None:
    """An empty queue read longer ago than `stale_after` is unknown now."""
    pool = await make_pool(2)
    pool.clock.advance(STALE_AFTER + 1)
    assert (await pool.client.delete("/balancer/backends/gpu1")).status == 202
    assert pool.balancer.registry.get("gpu1") is not None, "unknown is not idle"
    status = await (await pool.client.get("/balancer/status")).json()
    assert [r["state"] for r in status["backends"] if r["name"] == "gpu1"] == ["removed"]

    await pool.probe()  # a fresh reading: empty
    assert pool.balancer.registry.get("gpu1") is None


async def test_free_on_drain_unloads_once_the_last_jobs_end_is_pushed(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1, backend={"free_on_drain": True})
    emu, gpu0 = pool.emulators["gpu0"], backend(pool, "gpu0")
    emu.pause()
    job = (await pool.submit(workflow("txt2img")))["prompt_id"]
    await pool.client.post("/balancer/backends/gpu0/drain")
    assert not gpu0.freed, "it holds a job: not freed yet"

    emu.resume()  # no probe from here on
    await pool.done(job)
    await until(lambda: emu.memory.loaded is None, "its model was never unloaded")
    assert gpu0.freed and gpu0.drain_reasons == {"manual"}
