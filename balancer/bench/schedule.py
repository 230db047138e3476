"""`comfyui-balancer bench schedule`: late binding vs send-at-once vs round robin.

Four rows per load: late binding as configured by default (one prompt
pending per backend), late binding with none pending (`max_pending 0`, for
comparison), send-at-once least loaded (`max_pending_per_backend: null`) and
round robin (`routing.policy: round_robin`, which sends at once).

Processes, all on 127.0.0.1: two children with 4 emulated backends each
(half of the 8 at time scale 1, half at 2: twice as slow), one balancer per
(policy, load) run in its own child, and the open-loop load generator here.
Each run posts the same seeded trace per load (Poisson arrivals, 90 % short
jobs of 1 sampler step, 10 % of 30 steps) and times each job from just before
its POST /prompt to `executing` with node null on the client's socket.

Capacity = sum over backends of 1 / (mean emulated job time on it); the
arrival rate is `load x capacity`. Every latency is set against the ideal
central queue on the same trace (balancer.bench.ideal), computed from the
actual submit times and the jobs' emulated times: no HTTP, no event delivery,
no decision time, which the measured runs do pay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from balancer.bench.harness import child, free_port, table, wait_json, write_balancer_config
from balancer.bench.ideal import ideal_latencies, mean, quantile
from balancer.bench.schedule_load import (
    SHORT_STEPS,
    Planned,
    drive,
    mean_work,
    plan,
    workflow,
)


@dataclass(frozen=True)
class Policy:
    key: str
    label: str
    routing: dict[str, Any]


POLICIES = (
    Policy("default", "late binding (default)", {"max_pending_per_backend": 1}),
    Policy("pending0", "late binding, max_pending 0", {"max_pending_per_backend": 0}),
    Policy(
        "expected-finish",
        "late binding, expected_finish",
        {"max_pending_per_backend": 1, "policy": "expected_finish"},
    ),
    Policy("at-once", "send at once, least loaded", {"max_pending_per_backend": None}),
    Policy("round-robin", "round robin", {"policy": "round_robin"}),
)


@contextlib.contextmanager
def emulator_hosts(
    step_time: float, folder: Path, ports: list[int], scales: list[float]
) -> Iterator[list[int]]:
    """The two processes of emulated backends; their pids."""
    specs = [f"{port}:{scale}" for port, scale in zip(ports, scales, strict=True)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "balancer.bench.emulators", str(step_time), str(folder), *part],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for part in (specs[0::2], specs[1::2])  # fast and slow in each host
    ]
    try:
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def contains(key: str, mapping: Any) -> bool:
    return key in mapping


async def warm_up(session: aiohttp.ClientSession, ports: list[int]) -> None:
    """One job straight to each backend, so the shared nodes are cached."""
    for port in ports:
        base = f"http://127.0.0.1:{port}"
        await wait_json(session, base + "/queue", lambda _: True)
        body = {"prompt": workflow(10**9, SHORT_STEPS)}  # a seed no measured job has
        async with session.post(base + "/prompt", json=body) as resp:
            answer = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"warm-up on {base}: HTTP {resp.status}: {answer}")
            prompt_id = answer["prompt_id"]
        await wait_json(session, f"{base}/history/{prompt_id}", partial(contains, prompt_id))


@dataclass(frozen=True)
class Testbed:
    """The emulated backends, up and warmed, and what the trace needs of them."""

    session: aiohttp.ClientSession
    ports: list[int]
    scales: list[float]
    step_time: float
    capacity: float  # jobs per second
    folder: Path
    emulators: list[int]  # the pids of the processes running the backends

    def trace(self, args: argparse.Namespace, load: float) -> list[Planned]:
        """The seeded trace at `load` x capacity (the same for every run at that load)."""
        return plan(random.Random(f"{args.seed}/{load}"), args.jobs, load * self.capacity)


@contextlib.asynccontextmanager
async def testbed(args: argparse.Namespace, prefix: str) -> AsyncIterator[Testbed]:
    step_time = args.short_ms / 1000 / SHORT_STEPS
    scales = [1.0] * args.fast + [2.0] * args.slow
    capacity = sum(1 / (mean_work(step_time) * s) for s in scales)
    ports = [free_port() for _ in scales]
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with emulator_hosts(step_time, folder, ports, scales) as emulators:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                await warm_up(session, ports)
                yield Testbed(session, ports, scales, step_time, capacity, folder, emulators)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def measure(args: argparse.Namespace) -> tuple[str, list[str]]:
    rows: list[list[object]] = []
    ratios: dict[tuple[str, float], tuple[float, float]] = {}
    async with testbed(args, "bench-schedule-") as bed:
        session, ports, capacity = bed.session, bed.ports, bed.capacity
        for load in args.loads:
            jobs = bed.trace(args, load)
            for policy in [p for p in POLICIES if p.key in args.policies]:
                port = free_port()
                config = write_balancer_config(bed.folder, ports, port, routing=policy.routing)
                base = f"http://127.0.0.1:{port}"
                with child(["serve", "--config", str(config)]):
                    everyone_up = lambda h: h.get("backends_up") == len(ports)  # noqa: E731
                    await wait_json(session, base + "/balancer/health", everyone_up)
                    outcome = await drive(session, [base], jobs, bed.step_time)
                bound = ideal_latencies(outcome.trace, bed.scales)
                got = (mean(outcome.latencies), quantile(outcome.latencies, 0.99))
                best = (mean(bound), quantile(bound, 0.99))
                ratios[policy.label, load] = got
                rows.append(
                    [policy.label, f"{load:.0%}", len(jobs)]
                    + [f"{1000 * v:.0f}" for v in (*got, *best)]
                    + [f"{got[0] / best[0]:.2f}", f"{got[1] / best[1]:.2f}"]
                )
                print(" ".join(str(c) for c in rows[-1]), file=sys.stderr)
    headers = ["policy", "load", "jobs", "mean ms", "p99 ms", "bound mean", "bound p99"]
    headers += ["mean/bound", "p99/bound"]
    notes = [
        f"{args.fast} backends at time scale 1 and {args.slow} at 2; short job {args.short_ms:g} ms"
        f" of emulated sampling on a fast backend, long {30 * args.short_ms:g} ms, 10 % long;"
        f" capacity {capacity:.1f} jobs/s; seed {args.seed}.",
    ]
    late, rr = POLICIES[0].label, POLICIES[-1].label
    for load in args.loads:
        if (late, load) in ratios and (rr, load) in ratios:
            factor = ratios[rr, load][0] / ratios[late, load][0]
            notes.append(f"at {load:.0%}: round robin mean / late binding mean = {factor:.1f}x")
    return table(headers, rows), notes


def with_trace(args: argparse.Namespace, short_ms: float, jobs: int) -> argparse.Namespace:
    """`args` with these where --short-ms and --jobs were not given."""
    given = vars(args)
    chosen = {"short_ms": short_ms, "jobs": jobs}
    return argparse.Namespace(**{**given, **{k: v for k, v in chosen.items() if given[k] is None}})


def run_schedule_bench(args: argparse.Namespace) -> int:
    if args.replicas > 1:
        from balancer.bench.schedule_replicas import run_replicas_schedule_bench

        return run_replicas_schedule_bench(args)
    text, notes = asyncio.run(measure(with_trace(args, short_ms=25.0, jobs=2000)))
    print(text)
    for note in notes:
        print(note)
    return 0
