"""`comfyui-balancer bench proxy`: what the balancer adds to a request.

One emulated backend and one balancer, each in its own process; the load
generator here sends GET /history/{id} and GET /queue straight to the backend
and through the balancer, side by side in one run, at each concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import aiohttp

from balancer.bench.harness import (
    child,
    closed_loop,
    free_port,
    table,
    wait_ready,
    write_balancer_config,
)
from balancer.demo import DEMO_PROMPT


async def measure(seconds: float, concurrencies: list[int]) -> str:
    backend_port, balancer_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    config = write_balancer_config(folder, [backend_port], balancer_port)
    direct = f"http://127.0.0.1:{backend_port}"
    front = f"http://127.0.0.1:{balancer_port}"
    emulate = ["emulate", "--port", str(backend_port), "--time-scale", "0"]
    emulate += ["--base-dir", str(folder / "gpu0")]
    with child(emulate), child(["serve", "--config", str(config)]):
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, direct + "/queue")
            await wait_ready(session, front + "/balancer/health")
            prompt_id = await submit_one(session, front)
            rows = []
            for route in (f"/history/{prompt_id}", "/queue"):
                for concurrency in concurrencies:
                    base = await closed_loop(session, direct + route, concurrency, seconds)
                    via = await closed_loop(session, front + route, concurrency, seconds)
                    label = route.split("/")[1]
                    rows.append(
                        [
                            f"GET /{label}{'/{id}' if '/' in route[1:] else ''}",
                            concurrency,
                            f"{base.rps:.0f}",
                            f"{via.rps:.0f}",
                            f"{via.rps / base.rps:.2f}",
                            f"{base.p50_ms:.2f}",
                            f"{via.p50_ms:.2f}",
                            f"{via.p50_ms - base.p50_ms:+.2f}",
                            f"{base.quantile_ms(0.99):.2f}",
                            f"{via.quantile_ms(0.99):.2f}",
                        ]
                    )
    headers = ["route", "conc", "direct rps", "via rps", "ratio", "direct p50", "via p50"]
    headers += ["added p50", "direct p99", "via p99"]
    return table(headers, rows) + "\n(latencies in ms; one emulator, one balancer, this client)"


async def submit_one(session: aiohttp.ClientSession, front: str) -> str:
    for _ in range(50):
        async with session.post(front + "/prompt", json={"prompt": DEMO_PROMPT}) as resp:
            if resp.status == 200:
                prompt_id: str = (await resp.json())["prompt_id"]
                break
        await asyncio.sleep(0.1)  # the balancer's first probe has not landed yet
    else:
        raise RuntimeError("the balancer never accepted a prompt")
    for _ in range(100):
        async with session.get(f"{front}/history/{prompt_id}") as resp:
            if prompt_id in await resp.json():
                return prompt_id
        await asyncio.sleep(0.05)
    raise RuntimeError("the benchmark prompt never finished")


def run_proxy_bench(args: argparse.Namespace) -> int:
    concurrencies = [int(c) for c in str(args.concurrency).split(",")]
    print(asyncio.run(measure(args.seconds, concurrencies)))
    return 0
