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

Its default trace is `bench schedule`'s 4x slower (100 ms short jobs, 3 s
long ones, 600 jobs per run): at `bench schedule`'s own (25 ms, 43 and 55
jobs/s) a 2-core machine running the replicas, Redis, 8 emulated backends
and the load generator is short of CPU even with one replica (its mean 9x
to 22x the bound), so that trace measures whose CPU runs out first, not
binding through several replicas. `--short-ms 25 --jobs 2000` runs it.

The machine is shared and its load moves, so `--repeat` runs of 1 and of R
alternate on the same trace (1, R, 1, R, ...) and the table gives the pooled
means beside each pair's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from balancer.bench.floor import cpu_seconds
from balancer.bench.harness import table
from balancer.bench.ideal import ideal_latencies, mean, quantile
from balancer.bench.replicaset import replicas_on_redis, wait_replicas_ready
from balancer.bench.schedule import POLICIES, Testbed, testbed, with_trace
from balancer.bench.schedule_load import Outcome, Planned, drive

LATE_BINDING = POLICIES[0]


# Who spent the machine's CPU while a trace ran, in this order.
PARTS = ("replicas", "redis", "emulators", "load generator")


@dataclass(frozen=True)
class Run:
    outcome: Outcome
    cpu: tuple[float, ...]  # seconds each of PARTS spent (all its processes) while the trace ran
    load: float  # the machine's 1-minute load average as the trace began


async def run_once(
    session: aiohttp.ClientSession, folder: Path, bed: Testbed, count: int, jobs: list[Planned]
) -> Run:
    """The trace through `count` replicas, on a Redis of their own."""
    with replicas_on_redis(folder, bed.ports, count, routing=LATE_BINDING.routing) as replicas:
        await wait_replicas_ready(session, replicas)
        redis = [replicas.redis.proc.pid] if replicas.redis.proc is not None else []
        parts = ([p.pid for p in replicas.procs], redis, bed.emulators, [os.getpid()])
        before, load = [sum(map(cpu_seconds, pids)) for pids in parts], os.getloadavg()[0]
        outcome = await drive(session, replicas.urls, jobs, bed.step_time)
        spent = tuple(
            sum(map(cpu_seconds, pids)) - b for pids, b in zip(parts, before, strict=True)
        )
        return Run(outcome, spent, load)


async def measure(args: argparse.Namespace) -> tuple[str, list[str]]:
    rows: list[list[object]] = []
    notes: list[str] = []
    async with testbed(args, "bench-schedule-replicas-") as bed:
        capacity = bed.capacity
        for load in args.loads:
            jobs = bed.trace(args, load)
            runs: dict[int, list[Run]] = {1: [], args.replicas: []}
            for rep in range(args.repeat):
                for count in runs:  # interleaved: 1, R, 1, R, ...
                    home = bed.folder / f"{load}-{rep}-{count}"
                    run = await run_once(bed.session, home, bed, count, jobs)
                    runs[count].append(run)
                    ms = [1000 * s for s in run.outcome.latencies]
                    done = f"mean {mean(ms):.0f} ms, p99 {quantile(ms, 0.99):.0f} ms"
                    print(f"load {load:.0%}, run {rep}, {count} replicas: {done}", file=sys.stderr)
            rows.append([f"{load:.0%}", len(jobs), *row_cells(runs[1], runs[args.replicas], bed)])
            notes.append(machine_note(load, runs))
    r = str(args.replicas)
    headers = ["load", "jobs", "1 mean ms", "1 p99 ms", f"{r} mean ms", f"{r} p99 ms"]
    headers += [f"{r}/1 mean", "1 bound", f"{r} bound", "1 cpu ms/job", f"{r} cpu ms/job"]
    headers += [f"{r}/1 each run"]
    notes.insert(
        0,
        f"late binding (max_pending_per_backend 1), store.kind redis in both runs;"
        f" {args.fast} backends at time scale 1 and {args.slow} at 2; short job"
        f" {args.short_ms:g} ms, long {30 * args.short_ms:g} ms, 10 % long;"
        f" capacity {capacity:.1f} jobs/s; seed {args.seed}. With {r} replicas the"
        f" POSTs go round robin over them and the client's socket is on the first."
        f" {args.repeat} runs of each, interleaved (1, {r}, 1, {r}, ...) on the same trace:"
        " means and p99s over every job of every run; each run: the ratio of run i's means."
        " bound: the ideal central queue's mean on the runs' actual submit times."
        " cpu ms/job: the replicas' CPU time (all of them, from /proc) while the trace ran,"
        " per job. Nothing is pinned: the replicas, Redis, the emulated backends and the"
        " load generator (this process) share the machine's cores with each other and with"
        " whatever else runs, alike on both sides; the lines below split the CPU they spent.",
    )
    return table(headers, rows), notes


def machine_note(load: float, runs: dict[int, list[Run]]) -> str:
    """What every process of the bench spent, per job, on each side, and the
    load average as each run began: the emulated backends, Redis and the load
    generator share this machine's cores with the replicas."""
    sides = []
    for count, side in runs.items():
        jobs = sum(len(r.outcome.latencies) for r in side)
        cpu = [sum(r.cpu[i] for r in side) / jobs for i in range(len(PARTS))]
        split = ", ".join(f"{name} {1000 * c:.1f}" for name, c in zip(PARTS, cpu, strict=True))
        loads = "/".join(f"{r.load:.1f}" for r in side)
        sides.append(f"{count}: {split} (load average {loads})")
    return f"at {load:.0%}, cpu ms/job of each process group, " + "; ".join(sides)


def row_cells(one: list[Run], many: list[Run], bed: Testbed) -> list[str]:
    """Latency over all runs of each side, their ratio, the bounds, the
    replicas' CPU per job, and the ratio run by run."""
    pooled = [[x for r in side for x in r.outcome.latencies] for side in (one, many)]
    means = [mean(latencies) for latencies in pooled]
    cells = [f"{1000 * v:.0f}" for m, side in zip(means, pooled, strict=True)
             for v in (m, quantile(side, 0.99))]  # fmt: skip
    bounds = [
        mean([b for r in side for b in ideal_latencies(r.outcome.trace, bed.scales)])
        for side in (one, many)
    ]
    cpu = [sum(r.cpu[0] for r in side) / len(pooled[i]) for i, side in enumerate((one, many))]
    each = [
        mean(b.outcome.latencies) / mean(a.outcome.latencies)
        for a, b in zip(one, many, strict=True)
    ]
    return [
        *cells,
        f"{means[1] / means[0]:.2f}",
        *(f"{1000 * b:.0f}" for b in bounds),
        *(f"{1000 * c:.1f}" for c in cpu),
        "/".join(f"{r:.2f}" for r in each),
    ]


def run_replicas_schedule_bench(args: argparse.Namespace) -> int:
    text, notes = asyncio.run(measure(with_trace(args, short_ms=100.0, jobs=600)))
    print(text)
    for note in notes:
        print(note)
    return 0
