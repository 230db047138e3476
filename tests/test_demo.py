"""The README's main job: `comfyui-balancer demo` serves a working pool."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp

from balancer.bench.harness import free_port


async def test_demo_prints_a_working_url_and_curl_line_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    log = (tmp_path / "stderr").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "balancer", "demo", "--port", str(port), "--backends", "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env={**os.environ, "TMPDIR": str(temp)},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("curl "):
            raw = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert raw, f"demo ended early: {lines}"
            lines.append(raw.decode().strip())
        assert (
            lines[0]
            == f"comfyui-balancer demo: http://127.0.0.1:{port} in front of 2 emulated backends"
        )
        body = json.loads(re.search(r"-d '(.*)'$", lines[-1]).group(1))  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/prompt", json=body) as resp:
                assert resp.status == 200, await resp.text()
                prompt_id = (await resp.json())["prompt_id"]
            async with session.get(f"http://127.0.0.1:{port}/balancer/status") as resp:
                assert len((await resp.json())["backends"]) == 2
        assert prompt_id
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = await asyncio.wait_for(proc.wait(), 20)
        log.close()
    assert code == 0
    # It cleans up after itself, and its own shutdown is not a backend failure.
    assert list(temp.iterdir()) == []
    events = [json.loads(line)["event"] for line in (tmp_path / "stderr").read_text().splitlines()]
    assert "channel_up" in events
    assert "channel_down" not in events
