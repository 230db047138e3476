"""`comfyui-balancer bench outputs`: the time the output sink adds to a job's
end. One emulated backend and a balancer (each in its own process), a local
`rclone serve s3` as the bucket. For each output size a client times, on its
own WebSocket, the gap from the last node's `executed` to `executing` null
(the job's end), with `outputs.sink` off and then s3; the difference is the
copy into the bucket, held before the end is announced."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from balancer.bench.harness import child, free_port, table, wait_ready, write_balancer_config
from balancer.bench.noise import noise_prompt, side_for
from balancer.bench.s3server import BUCKET, S3Server

SIZES = ((1, "1 MB"), (50, "50 MB"))


async def end_gap(session: aiohttp.ClientSession, front: str, side: int, seed: int) -> float:
    """Seconds from the SaveImage node's `executed` to the job's end."""
    client_id = uuid.uuid4().hex
    async with session.ws_connect(f"{front}/ws?clientId={client_id}") as ws:
        body = {"prompt": noise_prompt(side, seed, "bench"), "client_id": client_id}
        async with session.post(front + "/prompt", json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"POST /prompt: HTTP {resp.status}: {await resp.text()}")
            prompt_id = (await resp.json())["prompt_id"]
        executed = None
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = msg.json()
            data = event.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            if event["type"] == "executed" and data.get("node") == "3":
                executed = time.perf_counter()
            if event["type"] == "executing" and data.get("node") is None:
                if executed is None:
                    raise RuntimeError("the job ended without its output node")
                return time.perf_counter() - executed
    raise RuntimeError("the WebSocket closed before the job ended")


async def one_mode(folder: Path, s3: S3Server, sink: bool, runs: int) -> dict[int, list[float]]:
    folder.mkdir(parents=True)
    backend_port, port = free_port(), free_port()
    outputs = {"sink": "s3", "bucket": BUCKET, "endpoint_url": s3.endpoint, "addressing": "path"}
    config = write_balancer_config(
        folder, [backend_port], port, **({"outputs": outputs} if sink else {})
    )
    front = f"http://127.0.0.1:{port}"
    emulate = ["emulate", "--port", str(backend_port), "--time-scale", "0"]
    gaps: dict[int, list[float]] = {}
    with (
        child([*emulate, "--base-dir", str(folder / "gpu0")]),
        child(["serve", "--config", str(config)]),
    ):
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"http://127.0.0.1:{backend_port}/queue")
            # ready: the backend is probed and its catalogue read
            await wait_ready(session, front + "/balancer/ready")
            for megabytes, _ in SIZES:
                side = side_for(megabytes * 1_000_000)
                gaps[megabytes] = [await end_gap(session, front, side, n) for n in range(runs)]
    return gaps


async def measure(runs: int) -> str:
    folder = Path(tempfile.mkdtemp(prefix="bench-outputs-"))
    s3 = S3Server(folder / "s3")
    os.environ.update(s3.environment())  # the balancer child finds the keys in the AWS chain
    await s3.start()
    try:
        off = await one_mode(folder / "off", s3, False, runs)
        on = await one_mode(folder / "on", s3, True, runs)
    finally:
        s3.close()
    rows: list[list[object]] = []
    for megabytes, label in SIZES:
        a, b = statistics.median(off[megabytes]), statistics.median(on[megabytes])
        rows.append([label, f"{1000 * a:.1f}", f"{1000 * b:.1f}", f"{1000 * (b - a):+.1f}"])
    headers = ["output", "sink off ms", "sink s3 ms", "added by the sink ms"]
    note = (
        f"\n(last node's `executed` to `executing` null on the client's socket; median of"
        f" {runs} jobs each; one emulator, rclone serve s3 on loopback)"
    )
    return table(headers, rows) + note


def run_outputs_bench(args: argparse.Namespace) -> int:
    print(asyncio.run(measure(args.runs)))
    return 0
