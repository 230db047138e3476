"""`comfyui-balancer bench ops`: what operations cost with many backends.

N emulated backends (in this process, each on its own loopback port) and a
balancer in front of them with its channels open. It times one probe round
(GET /queue and /system_stats of every backend, drain checks included) and
rendering /metrics, both in-process and over HTTP. The emulators share the
event loop, so a probe round includes their side of the work: an upper bound.
Then the steady cost of probing (`balancer.bench.probing`): the balancer and
the backends in processes of their own, the CPU of each read apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from balancer.app import create_app
from balancer.bench.harness import table
from balancer.bench.probing import steady_cost
from balancer.config.backend_settings import BackendSettings
from balancer.config.server_settings import LogSettings
from balancer.config.settings import Settings
from balancer.emulator import EmulatorOptions, create_emulator_app
from balancer.logs import configure_logging
from balancer.ops.context import OPS
from balancer.proxy.context import BALANCER
from balancer.runner import Running, start, stop_all


async def timed(run: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - began)
    return samples


def row(what: str, count: int, samples: list[float]) -> list[object]:
    ms = sorted(s * 1000 for s in samples)
    mean, p50, top = statistics.mean(ms), ms[len(ms) // 2], ms[-1]
    return [what, count, len(ms), f"{mean:.2f}", f"{p50:.2f}", f"{top:.2f}"]


async def measure(count: int, repeat: int) -> str:
    root = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    running: list[Running] = []
    try:
        for i in range(count):
            options = EmulatorOptions(name=f"gpu{i}", base_dir=root / f"gpu{i}", time_scale=0.0)
            running.append(await start(create_emulator_app(options), "127.0.0.1", 0))
        backends = tuple(BackendSettings(name=f"gpu{i}", url=r.url) for i, r in enumerate(running))
        app = create_app(Settings(backends=backends), run_prober=False)
        front = await start(app, "127.0.0.1", 0)
        running.append(front)
        b, ops = app[BALANCER], app[OPS]
        await b.prober.probe_all()  # warm the connection pool
        await b.catalogue_reader.settled()
        probes = await timed(b.prober.probe_all, repeat)
        renders = await timed(lambda: asyncio.sleep(0, ops.metrics.render()), repeat)
        size = len(ops.metrics.render())
        async with aiohttp.ClientSession() as session:

            async def scrape() -> None:
                async with session.get(front.url + "/metrics") as resp:
                    await resp.read()

            scrapes = await timed(scrape, repeat)
    finally:
        await stop_all(running)
    rows = [
        row("probe round", count, probes),
        row("render /metrics", count, renders),
        row("GET /metrics", count, scrapes),
    ]
    headers = ["measurement", "backends", "runs", "mean ms", "p50 ms", "max ms"]
    note = f"(/metrics body: {size} bytes; emulators share this process's event loop)"
    return table(headers, rows) + "\n" + note


def run_ops_bench(args: argparse.Namespace) -> int:
    configure_logging(LogSettings(level="error"))  # teardown closes 200 channels
    print(asyncio.run(measure(args.backends, args.repeat)))
    if args.steady > 0:
        rows = asyncio.run(steady_cost(args.backends, args.steady, args.stats_interval))
        print()
        print(table(["steady probing", "backends", "value"], rows))
        settings = f"probe.stats_interval {args.stats_interval:g} s, other probe settings default"
        print(f"({settings}; CPU over {args.steady:g} s; goal at 1,000: under 10 %)")
    return 0
