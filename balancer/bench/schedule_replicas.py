"""`comfyui-balancer bench schedule --replicas R`: late binding (the default,
one prompt pending per backend) through 1 replica vs through R, on the same
seeded trace, mean and p99 latency side by side.

The backends and the trace are `bench schedule`'s (see balancer.bench.schedule).
Each run has its own `redis-server` and replicas (store.kind redis), each
replica its own process. With R replicas job i is posted to replica i mod R
and the client's one socket is on r0, so the events of the other replicas'
jobs reach it through Redis: the cost a client pays when its POST and its
socket land on different replicas. The backends' room is shared through
Redis reservations, so the R replicas must not fill more than 1 pending each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

from balancer.bench.harness import table
from balancer.bench.ideal import ideal_latencies, mean, quantile
from balancer.bench.replicaset import replicas_on_redis, wait_replicas_ready
from balancer.bench.schedule import POLICIES, testbed
from balancer.bench.schedule_load import Outcome, Planned, drive

LATE_BINDING = POLICIES[0]


async def run_once(
    session: aiohttp.ClientSession,
    folder: Path,
    ports: list[int],
    count: int,
    jobs: list[Planned],
    step_time: float,
) -> Outcome:
    """The trace through `count` replicas, on a Redis of their own."""
    with replicas_on_redis(folder, ports, count, routing=LATE_BINDING.routing) as replicas:
        await wait_replicas_ready(session, replicas)
        return await drive(session, replicas.urls, jobs, step_time)


async def measure(args: argparse.Namespace) -> tuple[str, list[str]]:
    rows: list[list[object]] = []
    notes: list[str] = []
    async with testbed(args, "bench-schedule-replicas-") as bed:
        capacity = bed.capacity
        for load in args.loads:
            jobs = bed.trace(args, load)
            got: list[tuple[float, float]] = []
            bounds: list[float] = []
            for run, count in enumerate((1, args.replicas)):
                home = bed.folder / f"{load}-{run}"
                outcome = await run_once(bed.session, home, bed.ports, count, jobs, bed.step_time)
                latencies = outcome.latencies
                got.append((mean(latencies), quantile(latencies, 0.99)))
                bounds.append(mean(ideal_latencies(outcome.trace, bed.scales)))
                print(f"load {load:.0%}, {count} replica(s): {got[-1]}", file=sys.stderr)
            (one, one99), (many, many99) = got
            rows.append(
                [f"{load:.0%}", len(jobs)]
                + [f"{1000 * v:.0f}" for v in (one, one99, many, many99)]
                + [f"{many / one:.2f}"]
                + [f"{1000 * b:.0f}" for b in bounds]
            )
    r = str(args.replicas)
    headers = ["load", "jobs", "1 mean ms", "1 p99 ms", f"{r} mean ms", f"{r} p99 ms"]
    headers += [f"{r}/1 mean", "1 bound", f"{r} bound"]
    notes.append(
        f"late binding (max_pending_per_backend 1), store.kind redis in both runs;"
        f" {args.fast} backends at time scale 1 and {args.slow} at 2; short job"
        f" {args.short_ms:g} ms, long {30 * args.short_ms:g} ms, 10 % long;"
        f" capacity {capacity:.1f} jobs/s; seed {args.seed}. With {r} replicas the"
        f" POSTs go round robin over them and the client's socket is on the first."
        " bound: the ideal central queue's mean on each run's actual submit times."
    )
    return table(headers, rows), notes


def run_replicas_schedule_bench(args: argparse.Namespace) -> int:
    text, notes = asyncio.run(measure(args))
    print(text)
    for note in notes:
        print(note)
    return 0
