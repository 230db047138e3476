"""The web UI in front of a mixed pool: the model dropdown offers a
checkpoint only gpu1 has (the pool-wide /object_info), and running it lands
on gpu1."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from .browser import UiPage
from .harness import UiPool

FLUX = "flux1-dev.safetensors"
DEFAULTS = (
    "sd_xl_base_1.0.safetensors",
    "v1-5-pruned-emaonly.safetensors",
    "v1-5-pruned-emaonly-fp16.safetensors",
)

CHECKPOINT_WIDGET = """() => app.graph.nodes
    .find((n) => n.type === 'CheckpointLoaderSimple').widgets
    .find((w) => w.name === 'ckpt_name')"""


async def catalogues_read(pool: UiPool, timeout: float = 60.0) -> None:
    """Wait until the balancer has read both catalogues (its first probes)."""

    async def both() -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(pool.url + "/models/checkpoints") as resp:
                    if FLUX in await resp.json():
                        return
                await asyncio.sleep(0.05)

    await asyncio.wait_for(both(), timeout)


@pytest.fixture
def own_options() -> dict[str, dict[str, Any]]:
    return {"gpu1": {"checkpoints": (*DEFAULTS, FLUX)}}  # gpu0, the primary, lacks it


async def test_a_model_only_one_backend_has_is_offered_and_runs_there(
    ui: UiPage, pool: UiPool
) -> None:
    await catalogues_read(pool)
    await ui.open()
    async with ui.step("mixed-dropdown"):
        values = await ui.page.evaluate(f"() => ({CHECKPOINT_WIDGET})().options.values")
        assert FLUX in values and set(DEFAULTS) <= set(values)
        await ui.page.evaluate(f"(v) => {{ ({CHECKPOINT_WIDGET})().value = v; }}", FLUX)
    async with ui.step("mixed-run"):
        await ui.run()
        done = await ui.wait_event("execution_success")
        assert done["prompt_id"] in pool.emulators["gpu1"].history
        assert pool.emulators["gpu0"].history == {}
        await ui.save_image_src("@gpu1")
    assert ui.unexpected_failures() == [], ui.failures
