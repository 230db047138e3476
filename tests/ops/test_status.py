"""GET /balancer/status (JSON) and GET /balancer (HTML)."""

from __future__ import annotations

from support import PoolFactory, colored

from balancer.config.thresholds import VramThreshold

GiB = 1024**3
FIELDS = {
    "nodes",
    "resident_models",
    "name",
    "url",
    "state",
    "drain_reasons",
    "queue_running",
    "queue_pending",
    "inflight",
    "vram_used",
    "vram_total",
    "vram_limit",
    "last_probe_age_s",
    "last_error",
    "jobs_done",
    "jobs_failed",
    "running_prompt_id",
}


async def test_status_json_has_the_documented_fields(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, backend={"vram_limit": VramThreshold(fraction=0.5)})
    pool.emulators["gpu1"].set_vram_used(20 * GiB)
    pool.emulators["gpu0"].pause()
    running = (await pool.submit(colored(1)))["prompt_id"]
    await pool.probe()
    pool.clock.advance(1.5)
    doc = await (await pool.client.get("/balancer/status")).json()
    rows = {row["name"]: row for row in doc["backends"]}
    assert set(rows) == {"gpu0", "gpu1"}
    assert all(set(row) == FIELDS for row in rows.values())
    assert rows["gpu0"]["state"] == "up"
    assert rows["gpu0"]["running_prompt_id"] == running
    assert rows["gpu0"]["queue_running"] == 1
    assert rows["gpu0"]["last_probe_age_s"] == 1.5
    assert rows["gpu1"]["state"] == "draining"
    assert rows["gpu1"]["drain_reasons"] == ["vram"]
    assert rows["gpu1"]["vram_used"] == 20 * GiB
    assert rows["gpu1"]["vram_limit"] == 12 * GiB
    pool_ = doc["pool"]
    assert pool_["backends"] == 2 and pool_["up"] == 1 and pool_["draining"] == 1
    assert pool_["queue_running"] == 1 and pool_["vram_total"] == 48 * GiB
    pool.emulators["gpu0"].resume()
    await pool.wait_idle()


async def test_status_page_is_self_contained_html(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    resp = await pool.client.get("/balancer")
    assert resp.status == 200 and resp.content_type == "text/html"
    text = await resp.text()
    assert "/balancer/status" in text and "setInterval(refresh, 2000)" in text
    assert "http://" not in text and "https://" not in text  # no external assets
