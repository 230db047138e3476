"""The status page in a real browser: Debian's headless Chromium via Playwright."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import CHROMIUM, CHROMIUM_ARGS, PoolFactory, colored

from balancer.config.thresholds import VramThreshold

GiB = 1024**3

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed")


async def test_status_page_renders_rows_in_chromium(make_pool: PoolFactory, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    pool = await make_pool(3, backend={"vram_limit": VramThreshold(fraction=0.8)})
    pool.emulators["gpu2"].set_vram_used(22 * GiB)
    await pool.probe()
    await pool.client.post("/balancer/backends/gpu1/drain")
    running = "5b0e3c2a-9f1d-4c7e-8a6b-2d4f1e0c9a71"  # the widest cell: a running job's id
    started = pool.watch("running", running)
    pool.emulators["gpu0"].pause()
    await pool.client.post("/prompt", json={"prompt": colored(7), "prompt_id": running})
    await asyncio.wait_for(started.wait(), 10)
    await pool.probe()
    url = str(pool.client.make_url("/balancer"))
    shot = tmp_path / "status.png"  # kept by pytest under its tmp_path
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 768})
            await page.goto(url)
            await page.wait_for_selector("tr[data-backend='gpu2']")
            rows = await page.locator("#rows tr").all_inner_texts()
            states = await page.locator("#rows .state").all_inner_texts()
            totals = await page.locator("#totals").inner_text()
            overflow = await page.evaluate("document.body.scrollWidth > window.innerWidth")
            await page.screenshot(path=str(shot), full_page=True)
        finally:
            await browser.close()
    assert [r.split()[0] for r in rows] == ["gpu0", "gpu1", "gpu2"]
    assert states == ["up", "draining", "draining"]
    assert "manual" in rows[1] and "vram" in rows[2]
    assert running[:8] in rows[0], "the running job shows on its backend's row"
    assert "BACKENDS" in totals.upper()
    assert not overflow, "the table fits a laptop screen without horizontal scrolling"
    assert shot.stat().st_size > 10_000
