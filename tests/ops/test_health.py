"""Liveness (`/balancer/health`) and readiness (`/balancer/ready`)."""

from __future__ import annotations

from typing import Any

import pytest
from support import Pool, PoolFactory, colored

from balancer.config import ConfigError, parse_settings
from balancer.config.backend_settings import HealthSettings


async def get(pool: Pool, path: str) -> tuple[int, dict[str, Any]]:
    resp = await pool.client.get(path)
    return resp.status, await resp.json()


async def test_live_but_not_ready_before_any_backend_answered(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, probe_first=False)
    assert await get(pool, "/balancer/health") == (
        200,
        {"status": "ok", "backends": 2, "backends_up": 0},
    )
    assert await get(pool, "/balancer/ready") == (
        503,
        {
            "status": "not_ready",
            "reason": "all_down",
            "message": "no backend is up",
            "backends": 2,
            "backends_ready": 0,
            "min_backends_up": 1,
        },
    )


async def test_ready_once_a_backend_can_take_prompts(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    assert await get(pool, "/balancer/ready") == (
        200,
        {"status": "ready", "backends": 2, "backends_ready": 2, "min_backends_up": 1},
    )


async def test_not_ready_while_no_catalogue_is_read(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    pool.balancer.catalogues.forget("gpu0")  # up, but its nodes and models unknown
    resp = await pool.client.post("/prompt", json={"prompt": colored(1)})
    assert resp.status == 503  # every prompt is refused: unknown is not capable
    status, body = await get(pool, "/balancer/ready")
    assert (status, body["reason"], body["backends_ready"]) == (503, "catalogue_unread", 0)
    backend = pool.balancer.registry.get("gpu0")
    assert backend is not None
    await pool.balancer.catalogue_reader.read(backend)
    assert (await get(pool, "/balancer/ready"))[0] == 200
    await pool.submit(colored(1))


async def test_not_ready_when_load_data_is_stale(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    pool.clock.advance(60)  # unknown is not idle, and not ready either
    status, body = await get(pool, "/balancer/ready")
    assert (status, body["reason"]) == (503, "all_stale")
    assert (await get(pool, "/balancer/health"))[0] == 200


async def test_not_ready_with_fewer_backends_than_min_backends_up(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, settings_overrides={"health": HealthSettings(min_backends_up=3)})
    status, body = await get(pool, "/balancer/ready")
    assert status == 503
    assert body["reason"] == "too_few_backends"
    assert body["message"] == "2 of 2 backends can take prompts; 3 needed"


def test_min_backends_up_must_be_at_least_one() -> None:
    data = {"backends": [{"url": "http://a:1"}], "health": {"min_backends_up": 0}}
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    assert info.value.errors == ["health.min_backends_up: must be >= 1"]
