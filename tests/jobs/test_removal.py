"""Removed is removed: a job deleted, cleared or cancelled never starts after
the answer to that request was sent (issue 11, defect 1)."""

from __future__ import annotations

from typing import Any

from support import Pool, PoolFactory, colored


async def two_running_two_waiting(make_pool: PoolFactory) -> tuple[Pool, list[str], list[str]]:
    """Two backends, four prompts: each backend runs one (held at its first
    node) and holds one in its own queue."""
    pool = await make_pool(2)
    for emulator in pool.emulators.values():
        emulator.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    await pool.probe()
    waiting = [item.prompt_id for e in pool.emulators.values() for item in e.queue.pending()]
    assert len(waiting) == 2 and len(pool.balancer.jobs.queue) == 0
    return pool, ids, waiting


def runs(pool: Pool) -> list[str]:
    return [i for e in pool.emulators.values() for i in e.executed]


async def api_job(pool: Pool, prompt_id: str) -> dict[str, Any]:
    resp = await pool.client.get(f"/api/jobs/{prompt_id}")
    assert resp.status == 200
    job: dict[str, Any] = await resp.json()
    return job


async def finish(pool: Pool, ids: list[str]) -> None:
    await pool.probe()  # a probe now misses the removed job from its backend's queue
    for emulator in pool.emulators.values():
        emulator.resume()
    await pool.settle(ids)
    await pool.probe()


async def test_a_job_deleted_from_a_backends_queue_never_runs(make_pool: PoolFactory) -> None:
    pool, ids, waiting = await two_running_two_waiting(make_pool)
    victim = waiting[0]
    resp = await pool.client.post("/queue", json={"delete": [victim]})
    assert resp.status == 200
    await finish(pool, [i for i in ids if i != victim])
    assert victim not in runs(pool)
    assert sorted(runs(pool)) == sorted(i for i in ids if i != victim)
    assert (await api_job(pool, victim))["status"] == "cancelled"
    assert await (await pool.client.get(f"/history/{victim}")).json() == {}


async def test_clear_ends_every_waiting_job_for_good(make_pool: PoolFactory) -> None:
    pool, ids, waiting = await two_running_two_waiting(make_pool)
    late = (await pool.submit(colored(9)))["prompt_id"]  # waits in the balancer
    resp = await pool.client.post("/queue", json={"clear": True})
    assert resp.status == 200
    running = [i for i in ids if i not in waiting]
    await finish(pool, running)
    assert sorted(runs(pool)) == sorted(running), "a clear never touches a running job"
    for prompt_id in [*waiting, late]:
        assert (await api_job(pool, prompt_id))["status"] == "cancelled"


async def test_cancel_drops_a_waiting_job_and_interrupts_a_running_one(
    make_pool: PoolFactory,
) -> None:
    pool, ids, waiting = await two_running_two_waiting(make_pool)
    running = next(i for i in ids if i not in waiting)
    for prompt_id in (waiting[0], running):
        resp = await pool.client.post(f"/api/jobs/{prompt_id}/cancel")
        assert await resp.json() == {"cancelled": True}
    rest = [i for i in ids if i != waiting[0]]
    await finish(pool, rest)
    assert waiting[0] not in runs(pool)
    assert (await api_job(pool, waiting[0]))["status"] == "cancelled"
    entry = (await (await pool.client.get(f"/history/{running}")).json())[running]
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert (await api_job(pool, running))["status"] == "cancelled"
    finished = await pool.client.post(f"/api/jobs/{running}/cancel")
    assert await finished.json() == {"cancelled": False}, "a finished job is a no-op"
