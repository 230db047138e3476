"""Probe rounds: /system_stats on its own interval, starts spread over the round."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from support import PoolFactory

from balancer.backends.prober import SLICES, Prober
from balancer.config.model import ProbeSettings


def counting(paths: list[str]) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        paths.append(request.path)
        return await handler(request)

    return record


async def test_system_stats_are_read_every_stats_interval(make_pool: PoolFactory) -> None:
    paths: list[str] = []
    probe = ProbeSettings(stats_interval=5.0)
    pool = await make_pool(1, probe=probe, middlewares=(counting(paths),))
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and gpu0.snapshot is not None
    vram = gpu0.snapshot.vram_free
    for _ in range(3):
        pool.clock.advance(1.0)
        await pool.probe()
    assert paths.count("/system_stats") == 1 and paths.count("/queue") == 4
    assert gpu0.snapshot.vram_free == vram  # the last reading stands in between
    pool.clock.advance(2.0)
    await pool.probe()
    assert paths.count("/system_stats") == 2


async def test_a_round_spreads_its_starts_over_half_an_interval(make_pool: PoolFactory) -> None:
    pool = await make_pool(3, probe=ProbeSettings(interval=1.0))
    naps: list[float] = []

    async def sleep(seconds: float) -> None:
        naps.append(seconds)

    b = pool.balancer
    prober = Prober(
        b.registry, b.upstream, b.settings.probe, pool.clock,
        on_failure=lambda _backend, _death: None, listeners=(), on_down=(), sleep=sleep,
    )  # fmt: skip
    await prober.probe_spread()
    assert naps == [1.0 / 2 / 3] * 2 and prober.rounds == 1  # 3 backends: 3 groups
    assert SLICES >= 3
