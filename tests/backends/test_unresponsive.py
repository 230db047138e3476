"""Unresponsive is not dead: probe timeouts versus refused connections."""

from __future__ import annotations

from support import PoolFactory

from balancer.config.backend_settings import ProbeSettings

# One failure would be enough to go down. A hung backend's probes time out
# when the test says (`Pool.hang`), never because the machine is slow.
FAST = ProbeSettings(unhealthy_after=1)


def states(pool: object) -> dict[str, bool]:
    return {b.name: b.healthy for b in pool.balancer.registry}  # type: ignore[attr-defined]


async def test_a_hanging_backend_goes_down_while_another_is_healthy(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2, probe=FAST)
    pool.hang("gpu0")
    pool.clock.advance(10)  # nothing heard from gpu0 for longer than a round
    await pool.probe()
    assert states(pool) == {"gpu0": False, "gpu1": True}
    pool.hang("gpu0", False)


async def test_timeouts_never_take_the_last_healthy_backend_out(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, probe=FAST)
    await pool.servers["gpu1"].close()  # refused: dead, and down at once
    pool.hang("gpu0")
    pool.clock.advance(10)
    for _ in range(3):
        await pool.probe()
    assert states(pool) == {"gpu0": True, "gpu1": False}
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and "Timeout" in (gpu0.last_error or "")
    pool.hang("gpu0", False)


async def test_a_probe_timeout_does_not_count_while_the_channel_speaks(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2, probe=FAST)
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None
    pool.hang("gpu0")  # HTTP hangs; the open channel still speaks
    pool.clock.advance(10)
    status = pool.emulators["gpu0"].status()  # as the channel delivers a push
    await pool.balancer.relay.on_json(gpu0, {"type": "status", "data": status})
    await pool.probe()
    assert states(pool) == {"gpu0": True, "gpu1": True}
    assert gpu0.failures == 0 and "answers other calls" in (gpu0.last_error or "")
    pool.hang("gpu0", False)
