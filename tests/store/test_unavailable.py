"""A store that cannot answer (a shared store's server unreachable) gives a
503 `store_unavailable` with Retry-After, never an empty answer, and nothing
is accepted meanwhile. Memory and SQLite never fail this way: the store here
is a test double of the Store interface that fails every call while `down`."""

from __future__ import annotations

from typing import Any

from store_support import Outage
from structlog.testing import capture_logs
from support import PoolFactory, colored

from balancer.store import MemoryStore


async def assert_store_unavailable(resp: Any) -> None:
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["error"]["type"] == "store_unavailable" and body["node_errors"] == {}


async def test_a_prompt_is_refused_with_503_and_nothing_is_accepted(
    make_pool: PoolFactory,
) -> None:
    store = Outage(MemoryStore())
    pool = await make_pool(2, store=store)
    store.down = True
    with capture_logs() as logs:
        resp = await pool.client.post("/prompt", json={"prompt": colored(1), "prompt_id": "p1"})
    await assert_store_unavailable(resp)
    assert [e["path"] for e in logs if e["event"] == "store_unavailable"] == ["/prompt"]
    store.down = False
    assert await store.inner.jobs() == [] and await store.inner.get_pin("p1") is None
    assert all(not e.executed and e.queue.running is None for e in pool.emulators.values())
    queue = await (await pool.client.get("/queue")).json()
    assert queue == {"queue_running": [], "queue_pending": []}
    again = await pool.submit(colored(1), prompt_id="p1")  # back: the same request is accepted
    await pool.done(again["prompt_id"])
    assert "p1" in await (await pool.client.get("/history/p1")).json()


async def test_reads_fail_clearly_instead_of_answering_empty(make_pool: PoolFactory) -> None:
    store = Outage(MemoryStore())
    pool = await make_pool(1, store=store)
    prompt_id = (await pool.submit(colored(2)))["prompt_id"]
    await pool.done(prompt_id)
    store.down = True
    for path in (f"/history/{prompt_id}", f"/api/jobs/{prompt_id}"):
        await assert_store_unavailable(await pool.client.get(path))
    store.down = False
    history = await (await pool.client.get(f"/history/{prompt_id}")).json()
    assert history[prompt_id]["status"]["status_str"] == "success"


async def test_the_balancer_goes_on_by_itself_when_the_store_returns(
    make_pool: PoolFactory,
) -> None:
    """Channel events, probes, job ends and the binder meet the outage and
    skip; nothing stops, and once the store answers every job ends."""
    store = Outage(MemoryStore())
    pool = await make_pool(1, store=store)
    gpu = pool.emulators["gpu0"]
    gpu.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(3)]
    assert len(pool.balancer.jobs.queue) >= 1, "one waits in the balancer"
    store.down = True
    with capture_logs() as logs:
        gpu.resume()  # runs end and the binder wakes while nothing can be read or written
        await gpu.wait_idle(10)
        await pool.probe()
    events = {e["event"] for e in logs}
    assert {"channel_event_failed", "reconcile_failed"} <= events, events
    store.down = False
    await pool.settle(ids)
    late = (await pool.submit(colored(9)))["prompt_id"]  # channel and binder still work
    await pool.done(late)
    for prompt_id in [*ids, late]:
        job = await (await pool.client.get(f"/api/jobs/{prompt_id}")).json()
        assert job["status"] == "completed", (prompt_id, job)
