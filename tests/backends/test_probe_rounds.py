"""Probe rounds: /system_stats on its own interval, starts spread over the round."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from support import HANG_BOUND, HeldAnswer, Pool, PoolFactory

from balancer.backends.prober import SLICES, Prober
from balancer.config.backend_settings import ProbeSettings


def counting(paths: list[str]) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        paths.append(request.path)
        return await handler(request)

    return record


def napping_prober(
    pool: Pool, naps: list[float], ping: Any = None, wake: Callable[[], None] | None = None
) -> Prober:
    """The pool's prober as it is built, but its sleeps between a round's
    groups only noted in `naps`, and `ping` and `wake` in place of the
    channels' and the late binder's if given."""

    async def sleep(seconds: float) -> None:
        naps.append(seconds)

    b = pool.balancer
    return Prober(
        b.registry, b.upstream, b.settings.probe, pool.clock,
        on_failure=lambda _backend, _death: None, listeners=(), on_down=(),
        ping=ping or b.channels.answering, wake=wake or b.binder.wake, wanted=b.prober.wanted,
        sleep=sleep,
    )  # fmt: skip


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
    prober = napping_prober(pool, naps)
    pool.clock.advance(pool.balancer.settings.probe.channel_interval)  # every backend is due
    await prober.probe_spread()
    assert naps == [1.0 / 2 / 3] * 2 and prober.rounds == 1  # 3 backends: 3 groups
    assert SLICES >= 3


async def test_the_first_round_spreads_its_starts_over_a_whole_interval(
    make_pool: PoolFactory,
) -> None:
    """At start-up every backend's first probe (a new connection each) is
    spread twice as thin as a later round's."""
    pool = await make_pool(3, probe=ProbeSettings(interval=1.0), probe_first=False)
    naps: list[float] = []
    prober = napping_prober(pool, naps)
    await prober.probe_spread()
    assert naps == [1.0 / 3] * 2 and prober.rounds == 1
    assert all(backend.snapshot is not None for backend in pool.balancer.registry)


async def test_an_idle_backend_with_its_channel_up_is_asked_less_often(
    make_pool: PoolFactory,
) -> None:
    """Its status pushes would tell every queue change and its heartbeat
    would close a silent channel, so a round vouches for its reading and
    asks it only every channel_interval."""
    paths: list[str] = []
    settings = ProbeSettings(interval=1.0, timeout=2.0, stale_after=5.0, channel_interval=8.0)
    pool = await make_pool(1, probe=settings, middlewares=(counting(paths),))

    b = pool.balancer
    prober = napping_prober(pool, [])

    async def rounds(count: int) -> int:
        before = paths.count("/queue")
        for _ in range(count):
            pool.clock.advance(settings.interval)
            await prober.probe_spread()
        return paths.count("/queue") - before

    assert await rounds(7) == 0, "not asked within channel_interval"
    backend = b.registry.get("gpu0")
    assert backend is not None and backend.is_fresh(pool.clock(), settings)  # 7 s after its probe
    pool.clock.advance(settings.stale_after + 1)
    assert not backend.is_fresh(pool.clock(), settings), "no round vouched: stale"
    assert await rounds(1) == 1, "channel_interval passed: asked"
    await b.channels.stop("gpu0")
    assert await rounds(3) == 3, "without a channel, every round"


async def test_a_backend_that_does_not_answer_pings_is_asked_before_its_reading_goes_stale(
    make_pool: PoolFactory,
) -> None:
    """Unanswered pings vouch for nothing: its reading ages, and a round asks
    it once the reading could go stale before the next (every other round
    here), long before channel_interval."""
    paths: list[str] = []
    settings = ProbeSettings(interval=1.0, timeout=2.0, stale_after=5.0, channel_interval=60.0)
    pool = await make_pool(1, probe=settings, middlewares=(counting(paths),))

    async def silent(_backends: Any, _timeout: float) -> list[Any]:
        return []

    b = pool.balancer
    prober = napping_prober(pool, [], silent)
    before = paths.count("/queue")
    for _ in range(6):
        pool.clock.advance(settings.interval)
        await prober.probe_spread()
    assert paths.count("/queue") - before == 3
    backend = b.registry.get("gpu0")
    assert backend is not None and backend.is_fresh(pool.clock(), settings)


async def test_a_round_leaves_a_backend_whose_probe_is_still_out_to_the_round_before(
    make_pool: PoolFactory,
) -> None:
    """A slow answer holds up neither the next round nor the other backends'
    pings, and is not asked for twice."""
    paths: list[str] = []
    held = HeldAnswer("GET", "/queue")
    pool = await make_pool(3, middlewares=(counting(paths), held.middleware()))
    b = pool.balancer
    await b.channels.stop("gpu1")  # asked over HTTP every round; the others pinged
    prober = napping_prober(pool, [])
    held.armed = True
    pool.clock.advance(1.0)
    slow = asyncio.create_task(prober.probe_spread())
    await asyncio.wait_for(held.served.wait(), HANG_BOUND)
    asked = paths.count("/queue")

    pool.clock.advance(0.5)  # the others' readings are not due yet (their pings may be out)
    await prober.probe_spread()
    assert prober.rounds == 1 and paths.count("/queue") == asked, "gpu1 is left to the first"
    gpu0 = b.registry.get("gpu0")
    assert gpu0 is not None and gpu0.newest is not None and gpu0.newest[0] == pool.clock()

    held.release.set()
    await asyncio.wait_for(slow, HANG_BOUND)
    assert prober.rounds == 2
