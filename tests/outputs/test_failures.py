"""The bucket down: jobs still end, their outputs marked `stored: false`
after the retries, counted and shown; the bucket back: later jobs copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import CHROMIUM, CHROMIUM_ARGS, PoolFactory, colored

from balancer.bench.s3server import S3Server
from balancer.outputs.setup import OUTPUTS

from .conftest import sink_settings
from .test_sink import first_image


async def history(pool: Any, prompt_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = (await (await pool.client.get(f"/history/{prompt_id}")).json())[
        prompt_id
    ]
    return entry


async def test_jobs_end_while_the_bucket_is_down_and_copy_again_after(
    make_pool: PoolFactory, s3: S3Server
) -> None:
    pool = await make_pool(1, settings_overrides={"outputs": sink_settings(s3)})
    s3.stop()
    down = (await pool.submit(colored(1)))["prompt_id"]
    await pool.done(down, timeout=30)
    entry = await history(pool, down)
    assert entry["status"]["status_str"] == "success"
    image = first_image(entry)
    assert image["stored"] is False and "url" not in image and "key" not in image
    status = await (await pool.client.get("/balancer/status")).json()
    assert status["outputs"]["reachable"] is False
    assert "bucket" in status["outputs"]["last_error"]
    assert status["outputs"]["backlog"] == 0
    metrics = await (await pool.client.get("/metrics")).text()
    assert "comfyui_balancer_outputs_copy_failures_total 1.0" in metrics

    await s3.start()
    back = (await pool.submit(colored(2)))["prompt_id"]
    await pool.done(back, timeout=30)
    stored = first_image(await history(pool, back))
    assert stored["stored"] is True and s3.object_path(stored["key"]).exists()
    status = await (await pool.client.get("/balancer/status")).json()
    assert status["outputs"]["reachable"] is True
    metrics = await (await pool.client.get("/metrics")).text()
    assert 'comfyui_balancer_outputs_stored_files_total{how="put"} 1.0' in metrics
    size = s3.object_path(stored["key"]).stat().st_size
    assert f"comfyui_balancer_outputs_stored_bytes_total {float(size)}" in metrics


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed")
async def test_the_status_page_shows_an_unreachable_bucket(
    make_pool: PoolFactory, s3: S3Server
) -> None:
    from playwright.async_api import async_playwright

    pool = await make_pool(1, settings_overrides={"outputs": sink_settings(s3)})
    s3.stop()
    prompt_id = (await pool.submit(colored(3)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(str(pool.client.make_url("/balancer")))
            await page.wait_for_selector("#outputs span")
            line = await page.locator("#outputs").inner_text()
        finally:
            await browser.close()
    assert "outputs: s3 bucket outputs-test" in line and "unreachable" in line
    assert "backlog 0" in line and "last error: bucket:" in line


async def test_a_broken_sink_never_leaves_a_job_waiting(
    make_pool: PoolFactory, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = await make_pool(1, settings_overrides={"outputs": sink_settings(s3)})
    sink = pool.client.app[OUTPUTS]  # type: ignore[index]

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the copy")

    monkeypatch.setattr(sink.copier, "copy", broken)
    prompt_id = (await pool.submit(colored(4)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    entry = await history(pool, prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert "key" not in first_image(entry)  # ended as its backend gave it
