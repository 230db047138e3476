"""`comfyui-balancer bench proxy`: what the balancer adds to a request.

N emulated backends (2 by default) and one balancer, each in its own
process; the load generator here sends GET /history/{id} and GET /queue
straight to one backend, through the balancer (in front of all N) and
through nginx (nginx.py, in front of the same N; where installed), side by
side in one run, at each concurrency. Then `/view` of a large file (view.py):
direct, through the balancer, and through HAProxy in front of the same
backend, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from balancer.bench.floor import cpu_seconds
from balancer.bench.haproxy import haproxy_in_front
from balancer.bench.harness import (
    Result,
    child,
    closed_loop,
    free_port,
    table,
    wait_ready,
    write_balancer_config,
)
from balancer.bench.nginx import nginx_in_front
from balancer.bench.reference import family
from balancer.bench.view import view_table, write_output_file
from balancer.demo import DEMO_PROMPT


@dataclass(frozen=True)
class ViewRun:
    megabytes: int  # 0: no /view rows
    concurrencies: list[int]
    seconds: float


async def measure(seconds: float, concurrencies: list[int], backends: int, view: ViewRun) -> str:
    ports, balancer_port = [free_port() for _ in range(backends)], free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    config = write_balancer_config(folder, ports, balancer_port)
    direct = f"http://127.0.0.1:{ports[0]}"
    front = f"http://127.0.0.1:{balancer_port}"
    if view.megabytes:
        write_output_file(folder / "gpu0", view.megabytes)
    with contextlib.ExitStack() as stack:
        emulators = []
        for i, port in enumerate(ports):
            emulate = ["emulate", "--port", str(port), "--time-scale", "0"]
            emulators.append(
                stack.enter_context(child([*emulate, "--base-dir", str(folder / f"gpu{i}")]))
            )
        balancer = stack.enter_context(child(["serve", "--config", str(config)]))
        haproxy = stack.enter_context(haproxy_in_front(folder, ports[0]))
        nginx = stack.enter_context(nginx_in_front(folder, ports))
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            for port in ports:
                await wait_ready(session, f"http://127.0.0.1:{port}/queue")
            await wait_ready(session, front + "/balancer/health")
            for reference in (haproxy, nginx):
                if reference is not None:
                    await wait_ready(session, reference[0] + "/queue")
            prompt_id = await submit_one(session, front)
            serving = Serving(
                [emulators[0].pid],
                [balancer.pid, *(e.pid for e in emulators)],
                None if nginx is None else [*family(nginx[1]), *(e.pid for e in emulators)],
            )
            rows = []
            for route in (f"/history/{prompt_id}", "/queue"):
                for concurrency in concurrencies:
                    urls = (direct + route, front + route, nginx[0] + route if nginx else None)
                    rows.append(await _small_row(session, urls, serving, concurrency, seconds))
            if view.megabytes:
                paths = {
                    "direct": (direct, emulators[0].pid),
                    "via": (front, balancer.pid),
                    "haproxy": haproxy,
                }
                args = (view.concurrencies, view.seconds, view.megabytes)
                files = await view_table(session, paths, *args)
    headers = ["route", "conc", "direct rps", "via rps", "ratio", "nginx rps", "via/nginx"]
    headers += ["direct p50", "via p50", "added p50", "direct p99", "via p99"]
    headers += ["direct CPU us", "via CPU us", "nginx CPU us"]
    note = f"\n(latencies in ms; direct: one emulator; via: one balancer in front of {backends};"
    note += f" nginx: nginx in front of the same {backends}, round robin; CPU us: CPU"
    note += " microseconds per request of the proxy and the backends together, from /proc)"
    if nginx is None:
        note += "\n(nginx is not installed here: its columns are not measured)"
    small = table(headers, rows) + note
    return f"{small}\n\n{files}" if view.megabytes else small


@dataclass(frozen=True)
class Serving:
    """The processes that serve each path: their CPU is what a request costs."""

    direct: list[int]
    via: list[int]
    nginx: list[int] | None


@dataclass(frozen=True)
class Spent:
    result: Result
    cpu_us: float  # CPU microseconds per request of the serving processes


async def _spent(
    session: aiohttp.ClientSession, url: str, pids: list[int], concurrency: int, seconds: float
) -> Spent:
    cpu = sum(map(cpu_seconds, pids))
    result = await closed_loop(session, url, concurrency, seconds)
    spent = sum(map(cpu_seconds, pids)) - cpu
    return Spent(result, 1e6 * spent / max(1, result.requests))


async def _small_row(
    session: aiohttp.ClientSession,
    urls: tuple[str, str, str | None],
    serving: Serving,
    concurrency: int,
    seconds: float,
) -> list[object]:
    """One small GET at one concurrency: direct, via, nginx (where installed)."""
    direct, front, nginx = urls
    alone = await _spent(session, direct, serving.direct, concurrency, seconds)
    base = alone.result
    via = await _spent(session, front, serving.via, concurrency, seconds)
    ref = None
    if nginx is not None and serving.nginx is not None:
        ref = await _spent(session, nginx, serving.nginx, concurrency, seconds)
    route = urlsplit(front).path
    label = "GET /history/{id}" if route.startswith("/history/") else f"GET {route}"
    rps = via.result.rps
    return [
        label,
        concurrency,
        f"{base.rps:.0f}",
        f"{rps:.0f}",
        f"{rps / base.rps:.2f}",
        f"{ref.result.rps:.0f}" if ref else "-",
        f"{rps / ref.result.rps:.2f}" if ref else "-",
        f"{base.p50_ms:.2f}",
        f"{via.result.p50_ms:.2f}",
        f"{via.result.p50_ms - base.p50_ms:+.2f}",
        f"{base.quantile_ms(0.99):.2f}",
        f"{via.result.quantile_ms(0.99):.2f}",
        f"{alone.cpu_us:.0f}",
        f"{via.cpu_us:.0f}",
        f"{ref.cpu_us:.0f}" if ref else "-",
    ]


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
    if args.replicas > 1:
        from balancer.bench.proxy_replicas import run_replicas_proxy_bench

        return run_replicas_proxy_bench(args)
    concurrencies = [int(c) for c in str(args.concurrency).split(",")]
    view_concurrencies = [int(c) for c in str(args.view_concurrency).split(",")]
    view = ViewRun(args.view_mb, view_concurrencies, args.view_seconds)
    print(asyncio.run(measure(args.seconds, concurrencies, args.backends, view)))
    return 0
