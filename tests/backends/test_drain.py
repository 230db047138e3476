"""VRAM-limit draining with hysteresis, drain reasons, pinned traffic on a
drained backend, and POST /free once a drained backend is idle."""

from __future__ import annotations

from typing import Any

import pytest
from support import PoolFactory, colored, workflow

from balancer.backends.drain import vram_drained
from balancer.config.backend_settings import BackendSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.config.thresholds import VramThreshold

GiB = 1024**3
TOTAL = 24 * GiB  # the emulator's default card
LIMITS: dict[str, Any] = {
    "vram_limit": VramThreshold(fraction=0.9),
    "vram_resume": VramThreshold(fraction=0.75),
}

# These tests are about where prompts go, not about waiting: no balancer queue.
SEND_AT_ONCE = RoutingSettings(max_pending_per_backend=None)


def settings(**extra: Any) -> BackendSettings:
    return BackendSettings(name="gpu0", url="http://x:1", **{**LIMITS, **extra})


@pytest.mark.parametrize(
    ("used_gib", "before", "after"),
    [
        (23, False, True),  # over 90 %: drain
        (20, True, True),  # between 75 % and 90 %: unchanged
        (20, False, False),
        (17, True, False),  # under 75 %: undrain
        (21.6, False, False),  # exactly at the limit is not over it
    ],
)
def test_vram_hysteresis_is_a_pure_function(used_gib: float, before: bool, after: bool) -> None:
    free = TOTAL - int(used_gib * GiB)
    assert vram_drained(settings(), TOTAL, free, before) is after


def test_no_limit_never_drains_and_missing_figures_change_nothing() -> None:
    plain = BackendSettings(name="gpu0", url="http://x:1")
    assert vram_drained(plain, TOTAL, 0, True) is False
    assert vram_drained(settings(), None, None, True) is True
    assert vram_drained(settings(), None, None, False) is False


def test_a_size_limit_and_the_default_resume() -> None:
    sized = BackendSettings(name="g", url="http://x:1", vram_limit=VramThreshold(size=10 * GiB))
    assert vram_drained(sized, TOTAL, TOTAL - 11 * GiB, False) is True
    assert vram_drained(sized, TOTAL, TOTAL - int(9.5 * GiB), True) is True  # above 90 % of 10
    assert vram_drained(sized, TOTAL, TOTAL - 8 * GiB, True) is False


async def test_vram_over_the_limit_drains_and_recovery_undrains(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, backend=LIMITS, routing=SEND_AT_ONCE)
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None
    pool.emulators["gpu0"].set_vram_used(23 * GiB)
    await pool.probe()
    assert gpu0.drain_reasons == {"vram"}
    # two: gpu1 holds one running and one pending; more would wait in the balancer
    owners = {await pool.owner((await pool.submit(colored(i)))["prompt_id"]) for i in range(2)}
    assert owners == {"gpu1"}

    pool.emulators["gpu0"].set_vram_used(20 * GiB)  # between resume and limit
    await pool.probe()
    assert gpu0.draining, "hysteresis: still drained between vram_resume and vram_limit"

    pool.emulators["gpu0"].set_vram_used(17 * GiB)
    await pool.probe()
    assert not gpu0.draining
    await pool.wait_idle()
    await pool.probe()
    owners = {await pool.owner((await pool.submit(colored(i)))["prompt_id"]) for i in range(10, 14)}
    assert "gpu0" in owners


async def test_between_limit_and_resume_a_fresh_backend_stays_up(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, backend=LIMITS)
    pool.emulators["gpu0"].set_vram_used(20 * GiB)
    await pool.probe()
    assert not pool.balancer.registry.get("gpu0").draining  # type: ignore[union-attr]


async def test_two_reasons_need_both_cleared(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, backend=LIMITS)
    pool.emulators["gpu0"].set_vram_used(23 * GiB)
    await pool.probe()
    resp = await pool.client.post("/balancer/backends/gpu0/drain")
    assert resp.status == 200
    assert (await resp.json())["drain_reasons"] == ["manual", "vram"]

    pool.emulators["gpu0"].set_vram_used(1 * GiB)
    await pool.probe()
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and gpu0.drain_reasons == {"manual"}
    refused = await pool.client.post("/prompt", json={"prompt": colored(1)})
    assert refused.status == 503
    assert (await refused.json())["error"]["details"] == "all_draining"

    await pool.client.post("/balancer/backends/gpu0/undrain")
    assert not gpu0.draining
    await pool.submit(colored(2))


async def test_pinned_traffic_keeps_working_on_a_drained_backend(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, backend=LIMITS)
    done = (await pool.submit(colored(0x123456)))["prompt_id"]
    await pool.wait_idle()
    pool.emulators["gpu0"].pause()
    waiting = (await pool.submit(colored(0x654321)))["prompt_id"]

    pool.emulators["gpu0"].set_vram_used(23 * GiB)
    await pool.probe()
    assert pool.balancer.registry.get("gpu0").draining  # type: ignore[union-attr]

    history = await (await pool.client.get(f"/history/{done}")).json()
    image = history[done]["outputs"]["3"]["images"][0]
    view = await pool.client.get("/view", params=image)
    assert view.status == 200 and (await view.read()).startswith(b"\x89PNG")
    interrupt = await pool.client.post("/interrupt", json={"prompt_id": waiting})
    assert interrupt.status == 200
    pool.emulators["gpu0"].resume()
    await pool.wait_idle()


async def test_free_on_drain_unloads_an_idle_backend_once(make_pool: PoolFactory) -> None:
    limits = {"vram_limit": VramThreshold(size=4 * GiB), "free_on_drain": True}
    pool = await make_pool(1, backend=limits)
    emu = pool.emulators["gpu0"]
    await pool.submit(workflow("txt2img"))
    await pool.wait_idle()
    assert emu.memory.loaded is not None and emu.memory.used() > 4 * GiB

    await pool.probe()  # over the limit and idle: drained, then freed
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and gpu0.drain_reasons == {"vram"} and gpu0.freed
    assert emu.memory.loaded is None

    await pool.probe()  # the free brought it under vram_resume
    assert not gpu0.draining and not gpu0.freed
