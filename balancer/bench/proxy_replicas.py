"""`comfyui-balancer bench proxy --replicas R`: requests per second through
one replica vs through R, side by side in one run.

N emulated backends (time scale 0), one real `redis-server`, and the
replicas (`serve` with store.kind redis), each in its own process. Two
phases on the same backends: first 1 replica, then R replicas (Redis emptied
between); the load generator here runs the same closed loop in both, its
workers spread over the replicas (worker i on replica i mod R).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path

import aiohttp

from balancer.bench.harness import Result, child, free_ports, spread_loop, table
from balancer.bench.proxy import submit_one
from balancer.bench.replicaset import replicas_on_redis, wait_replicas_ready

ROUTES = ("/history/{id}", "/queue")


async def phase(
    folder: Path, ports: list[int], count: int, seconds: float, concurrencies: list[int]
) -> dict[tuple[str, int], Result]:
    """Every (route, concurrency) through `count` replicas."""
    results: dict[tuple[str, int], Result] = {}
    with replicas_on_redis(folder / f"phase{count}", ports, count) as replicas:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_replicas_ready(session, replicas)
            prompt_id = await submit_one(session, replicas.urls[0])
            for route in ROUTES:
                path = route.replace("{id}", prompt_id)
                urls = [url + path for url in replicas.urls]
                for concurrency in concurrencies:
                    loop = await spread_loop(session, urls, concurrency, seconds)
                    results[route, concurrency] = loop
    return results


async def measure(seconds: float, concurrencies: list[int], backends: int, replicas: int) -> str:
    ports = free_ports(backends)
    folder = Path(tempfile.mkdtemp(prefix="bench-proxy-replicas-"))
    with contextlib.ExitStack() as stack:
        for i, port in enumerate(ports):
            emulate = ["emulate", "--port", str(port), "--time-scale", "0"]
            stack.enter_context(child([*emulate, "--base-dir", str(folder / f"gpu{i}")]))
        one = await phase(folder, ports, 1, seconds, concurrencies)
        many = await phase(folder, ports, replicas, seconds, concurrencies)
    rows = [
        [
            f"GET {route}",
            concurrency,
            f"{one[key].rps:.0f}",
            f"{many[key].rps:.0f}",
            f"{many[key].rps / one[key].rps:.2f}",
            f"{one[key].p50_ms:.2f}",
            f"{many[key].p50_ms:.2f}",
            f"{one[key].quantile_ms(0.99):.2f}",
            f"{many[key].quantile_ms(0.99):.2f}",
        ]
        for key in one
        for route, concurrency in [key]
    ]
    r = str(replicas)
    headers = ["route", "conc", "1 rps", f"{r} rps", f"{r}/1", "1 p50", f"{r} p50"]
    headers += ["1 p99", f"{r} p99"]
    note = (
        f"\n(latencies in ms; 1: one replica, {r}: {r} replicas, the clients spread over them;"
        f" every replica on one redis-server, in front of {backends} emulated backends;"
        " the load generator is one Python process on the same machine)"
    )
    return table(headers, rows) + note


def run_replicas_proxy_bench(args: argparse.Namespace) -> int:
    concurrencies = [int(c) for c in str(args.concurrency).split(",")]
    text = asyncio.run(measure(args.seconds, concurrencies, args.backends, args.replicas))
    print(text)
    return 0
