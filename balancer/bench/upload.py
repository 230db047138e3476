"""`comfyui-balancer bench upload`: the time placement adds before dispatch.

One emulated backend and one balancer, each in its own process. Each round
uploads a fresh image of about 10 MB to the balancer, then times POST /prompt
of a LoadImage workflow twice: first the image must be placed on the backend
(uploaded to it before the prompt is forwarded), then it is already there.
The difference is what placement adds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from balancer.bench.harness import child, free_port, table, wait_ready, write_balancer_config


def noise_png(megabytes: float) -> bytes:
    """An incompressible PNG of about `megabytes` MB."""
    side = int((megabytes * 1_000_000 / 3) ** 0.5)
    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def prompt_for(name: str, nonce: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name, "_nonce": nonce}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


async def timed_prompt(session: aiohttp.ClientSession, front: str, name: str, n: int) -> float:
    started = time.perf_counter()
    async with session.post(front + "/prompt", json={"prompt": prompt_for(name, n)}) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST /prompt: HTTP {resp.status}: {body[:200]!r}")
    return time.perf_counter() - started


async def one_round(session: aiohttp.ClientSession, front: str, i: int, data: bytes) -> list[float]:
    form = aiohttp.FormData()
    form.add_field("image", data, filename=f"bench_{i}.png", content_type="image/png")
    async with session.post(front + "/upload/image", data=form) as resp:
        name = (await resp.json())["name"]
    placed = await timed_prompt(session, front, name, 2 * i)
    present = await timed_prompt(session, front, name, 2 * i + 1)
    return [placed, present]


async def measure(rounds: int, megabytes: float) -> str:
    backend_port, balancer_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    # Dispatch inline (no balancer queue), so POST /prompt's latency includes placement.
    config = write_balancer_config(
        folder, [backend_port], balancer_port, routing={"max_pending_per_backend": None}
    )
    front = f"http://127.0.0.1:{balancer_port}"
    emulate = ["emulate", "--port", str(backend_port), "--time-scale", "0"]
    emulate += ["--base-dir", str(folder / "gpu0")]
    images = [noise_png(megabytes) for _ in range(rounds)]
    with child(emulate), child(["serve", "--config", str(config)]):
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"http://127.0.0.1:{backend_port}/queue")
            await wait_ready(session, front + "/balancer/health")
            await _until_accepting(session, front)
            results = [await one_round(session, front, i, data) for i, data in enumerate(images)]
    placed = [1000 * r[0] for r in results]
    present = [1000 * r[1] for r in results]
    rows: list[list[object]] = [
        _row("input already on the backend", present),
        _row("input placed first", placed),
        [
            "added by placement (p50)",
            "",
            f"{statistics.median(placed) - statistics.median(present):+.1f}",
            "",
            "",
        ],
    ]
    size = f"{len(images[0]) / 1_000_000:.1f} MB"
    note = f"\n(POST /prompt latency in ms; {rounds} rounds, a {size} PNG each; one emulator)"
    return table(["case", "n", "p50", "min", "max"], rows) + note


def _row(label: str, values: list[float]) -> list[object]:
    median = statistics.median(values)
    return [label, len(values), f"{median:.1f}", f"{min(values):.1f}", f"{max(values):.1f}"]


async def _until_accepting(session: aiohttp.ClientSession, front: str) -> None:
    """The balancer's first probe must land before it dispatches."""
    for _ in range(100):
        async with session.post(front + "/prompt", json={"prompt": {}}) as resp:
            if resp.status != 503:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("the balancer never became ready")


def run_upload_bench(args: argparse.Namespace) -> int:
    print(asyncio.run(measure(args.rounds, args.megabytes)))
    return 0
