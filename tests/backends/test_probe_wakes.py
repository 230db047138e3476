"""The late binder is woken by a probe only when the probe changed what a
backend can take (up or down, fresh, its load, its drain), and once at the
end of every round; a probe that finds an idle backend idle again wakes
nothing (1,000 such probes a second each woke it, to look at every backend)."""

from __future__ import annotations

import aiohttp
from support import HANG_BOUND, Pool, PoolFactory, workflow

from balancer.backends.state import Backend
from balancer.config.backend_settings import ProbeSettings

from .test_probe_rounds import napping_prober


async def queue_directly(pool: Pool, name: str) -> None:
    """A prompt queued on the backend by someone else than the balancer."""
    url = pool.servers[name].make_url("/prompt")
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"prompt": workflow("fast")}) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def silenced(pool: Pool, name: str) -> Backend:
    """`name` with its channel closed: its load is known only from probes."""
    await pool.balancer.channels.stop(name)
    backend = pool.balancer.registry.get(name)
    assert backend is not None and backend.channel_id is None
    return backend


async def test_the_binder_is_woken_when_a_probe_frees_room_and_not_when_nothing_changed(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    gpu0 = await silenced(pool, "gpu0")
    wakes: list[str] = []
    prober = napping_prober(pool, [], wake=lambda: wakes.append(gpu0.name))

    await prober.probe(gpu0)
    assert wakes == [] and gpu0.load() == 0, "idle, and idle again: nothing to do"

    pool.emulators["gpu0"].pause()
    await queue_directly(pool, "gpu0")
    await prober.probe(gpu0)
    assert gpu0.load() == 1 and len(wakes) == 1, "its queue grew (a job that could be stolen)"
    await prober.probe(gpu0)
    assert len(wakes) == 1, "the same job again: nothing changed"

    pool.emulators["gpu0"].resume()
    await pool.wait_idle(HANG_BOUND)
    await prober.probe(gpu0)
    assert gpu0.load() == 0 and len(wakes) == 2, "room freed"


async def test_a_probe_that_brings_a_backend_up_or_its_reading_back_wakes_the_binder(
    make_pool: PoolFactory,
) -> None:
    settings = ProbeSettings(stale_after=5.0)
    pool = await make_pool(1, probe=settings, probe_first=False)
    gpu0 = await silenced(pool, "gpu0")
    wakes: list[str] = []
    prober = napping_prober(pool, [], wake=lambda: wakes.append(gpu0.name))

    await prober.probe(gpu0)
    assert gpu0.healthy and wakes == ["gpu0"], "up"
    pool.clock.advance(settings.stale_after + 1)
    assert not gpu0.is_fresh(pool.clock(), settings)
    await prober.probe(gpu0)
    assert gpu0.is_fresh(pool.clock(), settings) and len(wakes) == 2, "known again"


async def test_a_round_of_idle_backends_wakes_the_binder_once(make_pool: PoolFactory) -> None:
    settings = ProbeSettings(interval=1.0, stale_after=5.0, channel_interval=2.0)
    pool = await make_pool(3, probe=settings)
    wakes: list[int] = []
    prober = napping_prober(pool, [], wake=lambda: wakes.append(prober.rounds))
    pool.clock.advance(settings.channel_interval)  # each is due, its reading still fresh
    await prober.probe_spread()
    assert wakes == [1], "at the end of the round, not once per probe"
