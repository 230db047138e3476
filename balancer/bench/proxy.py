"""`comfyui-balancer bench proxy`: what the balancer adds to a request.

N emulated backends (2 by default) and one balancer, each in its own
process; the load generator here sends GET /history/{id} and GET /queue
straight to one backend, through the balancer (in front of all N) and
through nginx (nginx.py, in front of the same N; where installed), side by
side in one run, at each concurrency. The three paths take turns in short
slices (`taking_turns`): the machine may be shared, and three measurements
of seconds each, one after the other, let a burst of other work fall on one
path only (the ratios of one run moved 0.5x-1.0x that way). Nothing is
pinned to a core: with other work on the machine, the core the balancer got
to itself was shared with that work, while nginx's path spreads over three
processes (nginx and two emulators), each of which gets its own share. Then `/view` of a large
file (view.py): direct, through the balancer, and through HAProxy in front
of the same backend, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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

ROUNDS = 6  # slices per path and row, taking turns


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
            rows, load = [], [os.getloadavg()[0]]
            for route in (f"/history/{prompt_id}", "/queue"):
                for concurrency in concurrencies:
                    urls = (direct + route, front + route, nginx[0] + route if nginx else None)
                    rows.append(await _small_row(session, urls, serving, concurrency, seconds))
            load.append(os.getloadavg()[0])
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
    note += " microseconds per request of the proxy and the backends together, from /proc;"
    note += f" each path {ROUNDS} slices of {seconds / ROUNDS:g} s per row, taking turns;"
    note += f" load average {load[0]:.1f} before the rows, {load[1]:.1f} after)"
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
    cpu_s: float  # CPU seconds of the serving processes

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per request."""
        return 1e6 * self.cpu_s / max(1, self.result.requests)


def _total(slices: list[Spent]) -> Spent:
    """A path's slices of one row as one measurement."""
    latencies = [latency for part in slices for latency in part.result.latencies]
    requests = sum(part.result.requests for part in slices)
    result = Result(requests, sum(part.result.seconds for part in slices), latencies)
    return Spent(result, sum(part.cpu_s for part in slices))


async def _spent(
    session: aiohttp.ClientSession, url: str, pids: list[int], concurrency: int, seconds: float
) -> Spent:
    cpu = sum(map(cpu_seconds, pids))
    result = await closed_loop(session, url, concurrency, seconds)
    return Spent(result, sum(map(cpu_seconds, pids)) - cpu)


async def taking_turns(
    session: aiohttp.ClientSession,
    paths: dict[str, tuple[str, list[int]]],
    concurrency: int,
    seconds: float,
) -> dict[str, Spent]:
    """Each path for `seconds` in all, in `ROUNDS` slices taking turns (the
    first path of a round moves on by one each round), so a burst of other
    work on the machine falls on every path alike."""
    names = list(paths)
    slices: dict[str, list[Spent]] = {name: [] for name in names}
    for i in range(ROUNDS):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            url, pids = paths[name]
            slices[name].append(await _spent(session, url, pids, concurrency, seconds / ROUNDS))
    return {name: _total(parts) for name, parts in slices.items()}


async def _small_row(
    session: aiohttp.ClientSession,
    urls: tuple[str, str, str | None],
    serving: Serving,
    concurrency: int,
    seconds: float,
) -> list[object]:
    """One small GET at one concurrency: direct, via, nginx (where installed)."""
    direct, front, nginx = urls
    paths = {"direct": (direct, serving.direct), "via": (front, serving.via)}
    if nginx is not None and serving.nginx is not None:
        paths["nginx"] = (nginx, serving.nginx)
    spent = await taking_turns(session, paths, concurrency, seconds)
    alone, via, ref = spent["direct"], spent["via"], spent.get("nginx")
    base = alone.result
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
