"""A 60 MB output from an emulator in its own process is copied with
multipart, and the balancer's memory stays flat (it never holds the file)."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
from support import FakeClock

from balancer.app import create_app
from balancer.bench.harness import child, free_port, wait_ready
from balancer.bench.noise import noise_prompt, side_for
from balancer.bench.s3server import S3Server
from balancer.config.backend_settings import BackendSettings
from balancer.config.settings import Settings
from balancer.outputs.bucket import PART_SIZE
from balancer.proxy.context import BALANCER
from balancer.store import MemoryStore

from .conftest import sink_settings

SIZE = 60 * 1024 * 1024


async def ended(client: Any, prompt_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll /history/{id} until the job ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        entry = (await (await client.get(f"/history/{prompt_id}")).json()).get(prompt_id)
        if entry is not None:
            return dict(entry)
        assert loop.time() < deadline, "the job never ended"
        await asyncio.sleep(0.05)


async def test_a_60_mb_output_is_copied_in_parts_with_flat_memory(
    aiohttp_client: Any, s3: S3Server, tmp_path: Path
) -> None:
    port = free_port()
    emulate = ["emulate", "--port", str(port), "--base-dir", str(tmp_path / "gpu0")]
    with child([*emulate, "--time-scale", "0"]):
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url + "/system_stats")
        settings = Settings(
            backends=(BackendSettings(name="gpu0", url=url),),
            outputs=sink_settings(s3),
            data_dir=str(tmp_path / "data"),
        )
        app = create_app(settings, clock=FakeClock(), run_prober=False, store=MemoryStore())
        client = await aiohttp_client(app)
        await asyncio.wait_for(app[BALANCER].channels.channels["gpu0"].connected.wait(), 10)
        await app[BALANCER].prober.probe_all()
        await app[BALANCER].catalogue_reader.settled()
        tracemalloc.start()
        try:
            body = {"prompt": noise_prompt(side_for(SIZE), seed=1)}
            prompt_id = (await (await client.post("/prompt", json=body)).json())["prompt_id"]
            entry = await ended(client, prompt_id)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    image = entry["outputs"]["3"]["images"][0]
    written = (tmp_path / "gpu0" / "output" / image["filename"]).stat().st_size
    assert written > 55 * 1024 * 1024 and image["stored"] is True
    assert s3.object_path(image["key"]).stat().st_size == written
    assert peak < 4 * PART_SIZE < written  # a few parts at most, never the whole file
    metrics = await (await client.get("/metrics")).text()
    assert 'comfyui_balancer_outputs_stored_files_total{how="multipart"} 1.0' in metrics
