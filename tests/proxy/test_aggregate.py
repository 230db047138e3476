"""Reads that span the pool and writes that fan out."""

from __future__ import annotations

from support import Pool, PoolFactory, colored

from balancer.config.routing_settings import RoutingSettings


async def held_pool(make_pool: PoolFactory, jobs: int) -> tuple[Pool, list[str]]:
    pool = await make_pool(3)
    for emulator in pool.emulators.values():
        emulator.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(jobs)]
    await pool.probe()
    return pool, ids


async def test_queue_lists_every_backends_running_and_pending(make_pool: PoolFactory) -> None:
    pool, ids = await held_pool(make_pool, 6)
    queue = await (await pool.client.get("/queue")).json()
    running = {item[1] for item in queue["queue_running"]}
    pending = {item[1] for item in queue["queue_pending"]}
    assert len(running) == 3 and len(pending) == 3
    assert running | pending == set(ids)
    remaining = await (await pool.client.get("/api/prompt")).json()
    assert remaining == {"exec_info": {"queue_remaining": 6}}


async def test_queue_never_shows_comfy_org_tokens(make_pool: PoolFactory) -> None:
    pool, _ = await held_pool(make_pool, 0)
    extra = {"auth_token_comfy_org": "tok-SECRET", "api_key_comfy_org": "key-SECRET", "x": 1}
    await pool.submit(colored(1), extra_data=extra)
    text = await (await pool.client.get("/queue")).text()
    assert "SECRET" not in text
    assert '"x": 1' in text


async def test_queue_delete_is_split_per_owner_and_clear_reaches_all(
    make_pool: PoolFactory,
) -> None:
    pool, _ids = await held_pool(make_pool, 6)
    queue = await (await pool.client.get("/queue")).json()
    pending = [item[1] for item in queue["queue_pending"]]
    resp = await pool.client.post("/queue", json={"delete": pending[:2]})
    assert resp.status == 200
    queue = await (await pool.client.get("/queue")).json()
    assert [item[1] for item in queue["queue_pending"]] == pending[2:]
    resp = await pool.client.post("/api/queue", json={"clear": True})
    queue = await (await pool.client.get("/queue")).json()
    assert queue["queue_pending"] == [] and len(queue["queue_running"]) == 3


async def test_history_merges_and_pages_over_the_whole_pool(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    ids = []
    for i in range(5):
        ids.append((await pool.submit(colored(i)))["prompt_id"])
        await pool.wait_idle()
        await pool.probe()
    full = await (await pool.client.get("/history")).json()
    assert set(full) == set(ids)
    order = list(full)
    assert (await (await pool.client.get("/history?max_items=2")).json()).keys() == set(order[-2:])
    page = await (await pool.client.get("/history?offset=1&max_items=2")).json()
    assert list(page) == order[1:3]
    owners = {await pool.owner(i) for i in ids}
    assert owners == {"gpu0", "gpu1"}
    subfolders = {e["outputs"]["3"]["images"][0]["subfolder"] for e in full.values()}
    assert subfolders == {"@gpu0", "@gpu1"}


async def test_history_bad_paging_is_400(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    for query in ("max_items=x", "offset=-1", "max_items=1.5"):
        resp = await pool.client.get(f"/history?{query}")
        assert resp.status == 400, query
        assert "error" in await resp.json()


async def test_history_delete_and_clear(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    for prompt_id in ids:  # the balancer ended each (its emulator idle is not: one may wait)
        await pool.done(prompt_id)
    await pool.client.post("/history", json={"delete": ids[:2]})
    assert set(await (await pool.client.get("/history")).json()) == set(ids[2:])
    await pool.client.post("/history", json={"clear": True})
    assert await (await pool.client.get("/history")).json() == {}


async def test_system_stats_lists_every_device_and_hides_argv(make_pool: PoolFactory) -> None:
    pool = await make_pool(3)
    stats = await (await pool.client.get("/system_stats")).json()
    assert stats["system"]["argv"] == []
    assert [d["backend"] for d in stats["devices"]] == ["gpu0", "gpu1", "gpu2"]
    assert all(d["name"].startswith(d["backend"] + ": ") for d in stats["devices"])


async def test_down_after_consecutive_failures_and_up_after_success(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2, routing=RoutingSettings(max_pending_per_backend=None))
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and gpu0.healthy
    pool.emulators["gpu0"].faults.drop_connections = True
    await pool.probe()
    await pool.probe()
    assert gpu0.healthy, "two failures are not death (unhealthy_after=3)"
    await pool.probe()
    assert not gpu0.healthy
    owners = {await pool.owner((await pool.submit(colored(i)))["prompt_id"]) for i in range(3)}
    assert owners == {"gpu1"}
    pool.emulators["gpu0"].faults.drop_connections = False
    await pool.probe()
    assert gpu0.healthy


async def test_unlimited_history_streams_every_kept_entry_in_time_order(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    ran = (await pool.submit(colored(1)))["prompt_id"]
    await pool.done(ran)
    store = pool.balancer.store
    count = 1000  # several chunks of the streamed answer
    for i in reversed(range(count)):  # stored newest first: the answer is still oldest first
        start = ["execution_start", {"prompt_id": f"k{i}", "timestamp": 1000 + i}]
        await store.put_history(f"k{i}", {"status": {"completed": True, "messages": [start]}})
    full = await (await pool.client.get("/history")).json()
    assert list(full) == [f"k{i}" for i in range(count)] + [ran]
    page = await (await pool.client.get("/history?max_items=3")).json()
    assert list(page) == ["k998", "k999", ran]
    tail = await (await pool.client.get(f"/history?offset={count - 1}")).json()
    assert list(tail) == [f"k{count - 1}", ran]
    assert await (await pool.client.get("/history?offset=5000")).json() == {}


async def test_system_stats_come_from_a_fresh_probe_with_their_age(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    pool.emulators["gpu0"].faults.http_status = 500  # asked now, gpu0 would not answer
    pool.clock.advance(0.25)
    stats = await (await pool.client.get("/system_stats")).json()
    assert [d["backend"] for d in stats["devices"]] == ["gpu0", "gpu1"]
    assert 0.25 <= stats["age_s"] < 0.26 and stats["system"]["argv"] == []
    pool.clock.advance(1.0)  # older than probe.interval: asked anew
    stats = await (await pool.client.get("/system_stats")).json()
    assert [d["backend"] for d in stats["devices"]] == ["gpu1"] and stats["age_s"] == 0.0
    pool.emulators["gpu0"].faults.http_status = None
