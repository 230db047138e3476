"""A probe round pings every backend whose channel keeps its load known, all
at once, and waits once for the answers: a channel that does not answer
holds up none of the others, and is not a failure (unresponsive is not dead)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from support import HANG_BOUND, Pool, PoolFactory

from balancer.backends.channel import answered
from balancer.backends.state import Backend
from balancer.config.backend_settings import ProbeSettings

from .test_probe_rounds import napping_prober

SETTINGS = ProbeSettings(interval=1.0, timeout=2.0, stale_after=5.0, channel_interval=60.0)


def backend_end(pool: Pool, name: str) -> asyncio.Transport:
    """The backend's end of the balancer's channel to it."""
    backend = pool.balancer.registry.get(name)
    assert backend is not None and backend.channel_id is not None
    transport = pool.emulators[name].hub.clients[backend.channel_id].transport
    assert transport is not None
    return transport


async def test_a_round_with_one_unresponsive_channel_still_vouches_for_the_others(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(3, probe=SETTINGS)
    b = pool.balancer
    pinged: list[str] = []

    async def ping(backends: Sequence[Backend], _timeout: float) -> list[Backend]:
        """The channels' pings; the round's one wait ends (as its timeout
        would, later) once the answering channels answered."""
        pongs = await b.channels.send_pings(backends)
        pinged.extend(backend.name for backend in pongs.values())
        others = [pong for pong, backend in pongs.items() if backend.name != "gpu1"]
        await asyncio.wait_for(asyncio.gather(*others), HANG_BOUND)
        return answered(pongs)

    before = {backend.name: backend.newest for backend in b.registry}
    silent = backend_end(pool, "gpu1")
    silent.pause_reading()  # a ping waits unread, unanswered
    prober = napping_prober(pool, [], ping)
    pool.clock.advance(SETTINGS.interval)
    round_began = pool.clock()
    await prober.probe_spread()
    silent.resume_reading()

    assert sorted(pinged) == ["gpu0", "gpu1", "gpu2"], "each channel was pinged"
    newest = {backend.name: backend.newest for backend in b.registry}
    assert newest["gpu0"] is not None and newest["gpu0"][0] == round_began
    assert newest["gpu2"] is not None and newest["gpu2"][0] == round_began
    assert newest["gpu1"] == before["gpu1"], "unanswered: its reading ages"
    gpu1 = b.registry.get("gpu1")
    assert gpu1 is not None and gpu1.healthy and gpu1.failures == 0
    assert all(backend.is_fresh(pool.clock(), SETTINGS) for backend in b.registry)


async def test_every_channel_answering_ends_the_wait_with_all_of_them(
    make_pool: PoolFactory,
) -> None:
    """The round's wait ends once every pong is in (its timeout here only
    bounds a hang)."""
    pool = await make_pool(3, probe=SETTINGS)
    backends = list(pool.balancer.registry)
    answering = await pool.balancer.channels.answering(backends, HANG_BOUND)
    assert sorted(backend.name for backend in answering) == ["gpu0", "gpu1", "gpu2"]


async def test_a_channel_down_is_not_pinged_and_one_that_closes_before_it_answers_is_not_counted(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(3, probe=SETTINGS)
    channels, backends = pool.balancer.channels, list(pool.balancer.registry)
    await channels.stop("gpu2")
    dying = backend_end(pool, "gpu1")
    dying.pause_reading()
    unanswered = await channels.send_pings(backends)
    assert sorted(backend.name for backend in unanswered.values()) == ["gpu0", "gpu1"]
    dying.abort()  # gpu1 dies with its ping unread: the channel closes
    answering = await channels.answering(backends, HANG_BOUND)  # gpu1's ping is still in flight
    assert [backend.name for backend in answering] == ["gpu0"]
    assert [backend.name for backend in answered(unanswered)] == ["gpu0"]
