"""Finished jobs' outputs go to a real S3 server (rclone) and are served from
there: signed URLs, /history and /view, after the backend is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from support import PoolFactory, colored

from balancer.bench.s3server import S3Server
from balancer.outputs.setup import OUTPUTS

from .conftest import sink_settings


def first_image(entry: dict[str, Any]) -> dict[str, Any]:
    image: dict[str, Any] = entry["outputs"]["3"]["images"][0]
    return image


async def test_outputs_are_stored_and_signed_urls_download_them(
    make_pool: PoolFactory, s3: S3Server, tmp_path: Path
) -> None:
    pool = await make_pool(1, settings_overrides={"outputs": sink_settings(s3)})
    prompt_id = (await pool.submit(colored(7)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    entry = (await (await pool.client.get(f"/history/{prompt_id}")).json())[prompt_id]
    image = first_image(entry)
    assert image["stored"] is True
    assert image["key"] == f"outputs/@anonymous/{prompt_id}/3/{image['filename']}"
    assert image["subfolder"] == "@gpu0" and image["type"] == "output"
    written = (tmp_path / "gpu0" / "output" / image["filename"]).read_bytes()
    assert s3.object_path(image["key"]).read_bytes() == written
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in image["url"]
    async with aiohttp.ClientSession() as plain, plain.get(image["url"]) as resp:
        assert resp.status == 200
        assert await resp.read() == written


async def test_view_serves_a_stored_output_after_its_backend_is_gone(
    make_pool: PoolFactory, s3: S3Server, tmp_path: Path
) -> None:
    pool = await make_pool(2, settings_overrides={"outputs": sink_settings(s3)})
    prompt_id = (await pool.submit(colored(9)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    backend = await pool.owner(prompt_id)
    entry = (await (await pool.client.get(f"/history/{prompt_id}")).json())[prompt_id]
    image = first_image(entry)
    written = (tmp_path / backend / "output" / image["filename"]).read_bytes()
    await pool.servers[backend].close()  # the GPU node is gone, its disk with it
    query = {k: image[k] for k in ("filename", "subfolder", "type")}
    resp = await pool.client.get("/view", params=query)
    assert resp.status == 200
    assert await resp.read() == written
    ranged = await pool.client.get("/view", params=query, headers={"Range": "bytes=0-9"})
    assert ranged.status == 206 and await ranged.read() == written[:10]


async def test_redirect_mode_sends_the_client_to_a_signed_url(
    make_pool: PoolFactory, s3: S3Server
) -> None:
    outputs = sink_settings(s3, view="redirect")
    pool = await make_pool(1, settings_overrides={"outputs": outputs})
    prompt_id = (await pool.submit(colored(3)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    entry = (await (await pool.client.get(f"/history/{prompt_id}")).json())[prompt_id]
    query = {k: first_image(entry)[k] for k in ("filename", "subfolder", "type")}
    resp = await pool.client.get("/view", params=query, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].startswith(f"{s3.endpoint}/")


async def test_copying_a_stored_output_again_is_skipped_by_key_and_size(
    make_pool: PoolFactory, s3: S3Server
) -> None:
    pool = await make_pool(1, settings_overrides={"outputs": sink_settings(s3)})
    prompt_id = (await pool.submit(colored(6)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    kept = await pool.balancer.store.get_history(prompt_id)
    key = first_image(kept)["key"]
    before = s3.object_path(key).stat().st_mtime_ns
    sink = pool.client.app[OUTPUTS]  # type: ignore[index]
    backend = pool.balancer.registry.get("gpu0")
    assert backend is not None
    again = await sink.complete(prompt_id, backend.url, kept)  # as after a restart
    assert first_image(again)["key"] == key and first_image(again)["stored"] is True
    assert s3.object_path(key).stat().st_mtime_ns == before
    metrics = await (await pool.client.get("/metrics")).text()
    assert 'comfyui_balancer_outputs_stored_files_total{how="skipped"} 1.0' in metrics


async def test_the_jobs_api_carries_url_and_key(make_pool: PoolFactory, s3: S3Server) -> None:
    pool = await make_pool(1, settings_overrides={"outputs": sink_settings(s3)})
    prompt_id = (await pool.submit(colored(8)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    job = await (await pool.client.get(f"/api/jobs/{prompt_id}")).json()
    image = job["outputs"]["3"]["images"][0]
    assert image["key"] == f"outputs/@anonymous/{prompt_id}/3/{image['filename']}"
    assert image["stored"] is True and image["url"].startswith(f"{s3.endpoint}/")
    listed = await (await pool.client.get("/api/jobs")).json()
    (summary,) = [j for j in listed["jobs"] if j["id"] == prompt_id]
    assert summary["preview_output"]["key"] == image["key"]
    assert summary["preview_output"]["url"].startswith(f"{s3.endpoint}/")
