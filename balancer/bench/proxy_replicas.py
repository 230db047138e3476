"""`comfyui-balancer bench proxy --replicas R`: requests per second through
one replica vs through R, side by side in one run.

N emulated backends (time scale 0), one real `redis-server`, and the
replicas (`serve` with store.kind redis), each in its own process. Two
phases on the same backends: first 1 replica, then R replicas (Redis emptied
between); the load generator here runs the same closed loop in both, its
workers spread over the replicas (worker i on replica i mod R).

On a machine with fewer cores than replicas + load generator + backends,
requests per second cannot grow with replicas: they share the same cores.
So each row also says what a request costs, read over the same window: the
replicas' CPU time (user + system, from /proc, summed over the replicas) per
request, as requests per replica-CPU-second (equal in both phases: adding a
replica adds no cost per request, and the rate grows with the cores given),
the Redis commands per request (INFO's total_commands_processed, heartbeats
included), and how busy the load generator was (its CPU seconds per second:
near 1.0, one core, it is the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis

from balancer.bench.floor import cpu_seconds
from balancer.bench.harness import Result, child, free_ports, spread_loop, table
from balancer.bench.proxy import submit_one
from balancer.bench.replicaset import Replicas, replicas_on_redis, wait_replicas_ready

ROUTES = ("/history/{id}", "/queue")


@dataclass(frozen=True)
class Row:
    loop: Result
    replica_cpu: float  # seconds, all replicas together
    redis_commands: int
    generator_cpu: float  # seconds, this process

    @property
    def per_cpu(self) -> float:
        """Requests per replica-CPU-second."""
        return self.loop.requests / max(self.replica_cpu, 1e-9)

    @property
    def commands_per_request(self) -> float:
        return self.redis_commands / max(self.loop.requests, 1)

    @property
    def generator_busy(self) -> float:
        return self.generator_cpu / self.loop.seconds


async def measured(
    session: aiohttp.ClientSession, replicas: Replicas, path: str, concurrency: int, seconds: float
) -> Row:
    """One closed loop over the replicas, with what it cost them."""
    counter = redis.Redis.from_url(replicas.redis.url)
    pids = [proc.pid for proc in replicas.procs]

    def commands() -> int:
        return int(counter.info("stats")["total_commands_processed"])

    cpu, sent, mine = sum(map(cpu_seconds, pids)), commands(), time.process_time()
    loop = await spread_loop(session, [url + path for url in replicas.urls], concurrency, seconds)
    generator = time.process_time() - mine
    cpu, sent = sum(map(cpu_seconds, pids)) - cpu, commands() - sent - 1  # less its own INFO
    counter.close()
    return Row(loop, cpu, sent, generator)


async def phase(
    folder: Path, ports: list[int], count: int, seconds: float, concurrencies: list[int]
) -> dict[tuple[str, int], Row]:
    """Every (route, concurrency) through `count` replicas."""
    results: dict[tuple[str, int], Row] = {}
    with replicas_on_redis(folder / f"phase{count}", ports, count) as replicas:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_replicas_ready(session, replicas)
            prompt_id = await submit_one(session, replicas.urls[0])
            for route in ROUTES:
                path = route.replace("{id}", prompt_id)
                for concurrency in concurrencies:
                    row = await measured(session, replicas, path, concurrency, seconds)
                    results[route, concurrency] = row
    return results


def cells(one: Row, many: Row) -> list[str]:
    return [
        f"{one.loop.rps:.0f}",
        f"{many.loop.rps:.0f}",
        f"{many.loop.rps / one.loop.rps:.2f}",
        f"{one.per_cpu:.0f}",
        f"{many.per_cpu:.0f}",
        f"{many.per_cpu / one.per_cpu:.2f}",
        f"{one.commands_per_request:.2f}",
        f"{many.commands_per_request:.2f}",
        f"{one.generator_busy:.2f}",
        f"{many.generator_busy:.2f}",
        f"{one.loop.p50_ms:.2f}",
        f"{many.loop.p50_ms:.2f}",
    ]


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
        [f"GET {route}", conc, *cells(one[route, conc], many[route, conc])] for route, conc in one
    ]
    r = str(replicas)
    headers = ["route", "conc", "1 rps", f"{r} rps", f"{r}/1", "1 rps/cpu", f"{r} rps/cpu"]
    headers += [f"{r}/1 cpu", "1 redis/req", f"{r} redis/req", "1 gen", f"{r} gen"]
    headers += ["1 p50", f"{r} p50"]
    note = (
        f"\n(1: one replica, {r}: {r} replicas, the clients spread over them; every replica on"
        f" one redis-server, in front of {backends} emulated backends. rps/cpu: requests per"
        " second of the replicas' CPU time, all replicas together; redis/req: Redis commands"
        " per request; gen: the load generator's (one Python process) CPU seconds per second;"
        " p50 in ms)"
    )
    return table(headers, rows) + note


def run_replicas_proxy_bench(args: argparse.Namespace) -> int:
    concurrencies = [int(c) for c in str(args.concurrency).split(",")]
    text = asyncio.run(measure(args.seconds, concurrencies, args.backends, args.replicas))
    print(text)
    return 0
