"""/metrics: parses with Prometheus' own parser and carries the expected values."""

from __future__ import annotations

import hashlib

from store_support import Outage
from support import PoolFactory, colored

from balancer.config.access_settings import ApiKey, AuthSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.config.thresholds import VramThreshold
from balancer.store import MemoryStore

from .ops_helpers import EventWaiter, scrape, value

GiB = 1024**3
P = "comfyui_balancer_"


async def test_backend_gauges_follow_the_registry(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    pool.emulators["gpu1"].set_vram_used(5 * GiB)
    await pool.probe()
    samples = await scrape(pool)
    for name in ("gpu0", "gpu1"):
        assert value(samples, P + "backend_up", backend=name) == 1
        assert value(samples, P + "backend_draining", backend=name) == 0
        assert value(samples, P + "backend_queue_running", backend=name) == 0
        assert value(samples, P + "backend_queue_pending", backend=name) == 0
        assert value(samples, P + "backend_inflight", backend=name) == 0
        assert value(samples, P + "backend_vram_total_bytes", backend=name) == 24 * GiB
    assert value(samples, P + "backend_vram_used_bytes", backend="gpu1") == 5 * GiB

    resp = await pool.client.delete("/balancer/backends/gpu1")
    assert resp.status == 202
    await pool.probe()  # idle: it leaves the registry, and the metrics
    samples = await scrape(pool)
    assert value(samples, P + "backend_up", backend="gpu1") is None
    assert value(samples, P + "backend_up", backend="gpu0") == 1
    assert value(samples, P + "drains_total", backend="gpu1", reason="removed") == 1


async def test_job_counters_histograms_and_routing_outcomes(make_pool: PoolFactory) -> None:
    # No work stealing: a job taken back and sent to the other backend is
    # accepted twice (jobs_submitted counts acceptances), and whether a steal
    # happens depends on when each run ends.
    pool = await make_pool(2, routing=RoutingSettings(work_stealing=False))
    waiter = EventWaiter(pool)
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    await pool.wait_idle()
    await pool.probe()
    await waiter.until("completed", len(ids))

    samples = await scrape(pool)
    submitted = sum(
        value(samples, P + "jobs_submitted_total", backend=b) or 0 for b in ("gpu0", "gpu1")
    )
    completed = sum(
        value(samples, P + "jobs_completed_total", backend=b) or 0 for b in ("gpu0", "gpu1")
    )
    assert submitted == 4 and completed == 4
    assert (value(samples, P + "routing_decisions_total", outcome="chosen") or 0) >= 4
    assert value(samples, P + "job_queue_wait_seconds_count") == 4
    assert value(samples, P + "job_run_seconds_count", model="none") == 4  # no checkpoint
    assert (value(samples, P + "proxy_request_seconds_count", route_class="dispatched") or 0) >= 4


async def test_no_backend_outcomes_and_drains_are_counted(make_pool: PoolFactory) -> None:
    limits = {"vram_limit": VramThreshold(fraction=0.5)}
    pool = await make_pool(1, backend=limits)
    pool.emulators["gpu0"].set_vram_used(20 * GiB)
    await pool.probe()
    refused = await pool.client.post("/prompt", json={"prompt": colored(1)})
    assert refused.status == 503
    samples = await scrape(pool)
    assert value(samples, P + "routing_decisions_total", outcome="all_draining") == 1
    assert value(samples, P + "drains_total", backend="gpu0", reason="vram") == 1
    assert value(samples, P + "backend_draining", backend="gpu0") == 1
    assert value(samples, P + "proxy_errors_total", route_class="dispatched") == 1


async def test_request_latency_is_labelled_by_route_class(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    await pool.client.get("/queue")
    await pool.client.get("/history/nope")
    await pool.client.get("/object_info")
    await pool.client.get("/balancer/status")
    samples = await scrape(pool)
    for route_class in ("aggregated", "pinned", "pass-through", "ops"):
        count = value(samples, P + "proxy_request_seconds_count", route_class=route_class)
        assert count is not None and count >= 1, route_class


async def test_refusals_and_errors_are_timed_under_their_route_class(
    make_pool: PoolFactory,
) -> None:
    """Whoever answers is timed: the key gate's 401, the origin gate's 403
    and the 503 of a store that cannot answer, each under its route class;
    only the 503 counts as a proxy error."""
    key = ApiKey("root", hashlib.sha256(b"root-secret").digest(), "admin")
    store = Outage(MemoryStore())
    pool = await make_pool(1, store=store, settings_overrides={"auth": AuthSettings(keys=(key,))})
    assert (await pool.client.get("/queue")).status == 401
    elsewhere = {"Origin": "http://elsewhere.example", "X-API-Key": "root-secret"}
    posted = await pool.client.post("/prompt", json={"prompt": colored(1)}, headers=elsewhere)
    assert posted.status == 403
    store.down = True
    read = await pool.client.get("/history/p1", headers={"X-API-Key": "root-secret"})
    assert read.status == 503
    store.down = False
    samples = await scrape(pool)
    for route_class in ("aggregated", "dispatched", "pinned"):
        count = value(samples, P + "proxy_request_seconds_count", route_class=route_class)
        assert count == 1, route_class
    assert value(samples, P + "proxy_errors_total", route_class="pinned") == 1
    assert value(samples, P + "proxy_errors_total", route_class="aggregated") is None
    assert value(samples, P + "proxy_errors_total", route_class="dispatched") is None
