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

import aiohttp

from balancer.bench.haproxy import haproxy_in_front
from balancer.bench.harness import (
    child,
    closed_loop,
    free_port,
    table,
    wait_ready,
    write_balancer_config,
)
from balancer.bench.nginx import nginx_in_front
from balancer.bench.reference import Server
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
            rows = []
            for route in (f"/history/{prompt_id}", "/queue"):
                for concurrency in concurrencies:
                    base = await closed_loop(session, direct + route, concurrency, seconds)
                    via = await closed_loop(session, front + route, concurrency, seconds)
                    ref = await _reference_rps(session, nginx, route, concurrency, seconds)
                    label = route.split("/")[1]
                    rows.append(
                        [
                            f"GET /{label}{'/{id}' if '/' in route[1:] else ''}",
                            concurrency,
                            f"{base.rps:.0f}",
                            f"{via.rps:.0f}",
                            f"{via.rps / base.rps:.2f}",
                            f"{ref:.0f}" if ref else "-",
                            f"{via.rps / ref:.2f}" if ref else "-",
                            f"{base.p50_ms:.2f}",
                            f"{via.p50_ms:.2f}",
                            f"{via.p50_ms - base.p50_ms:+.2f}",
                            f"{base.quantile_ms(0.99):.2f}",
                            f"{via.quantile_ms(0.99):.2f}",
                        ]
                    )
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
    note = f"\n(latencies in ms; direct: one emulator; via: one balancer in front of {backends};"
    note += f" nginx: nginx in front of the same {backends}, round robin)"
    if nginx is None:
        note += "\n(nginx is not installed here: its columns are not measured)"
    small = table(headers, rows) + note
    return f"{small}\n\n{files}" if view.megabytes else small


async def _reference_rps(
    session: aiohttp.ClientSession,
    reference: Server | None,
    route: str,
    concurrency: int,
    seconds: float,
) -> float | None:
    """A reference proxy's rate on `route`; None where it is not installed."""
    if reference is None:
        return None
    return (await closed_loop(session, reference[0] + route, concurrency, seconds)).rps


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
