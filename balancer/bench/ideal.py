"""The reference a scheduling run is compared with: the same jobs (same
arrival times, same sizes) on an ideal central queue, computed offline.

The model, exactly:

- Servers: one per backend, each running one job at a time. Server `s` takes
  `work * slowdown[s]` seconds for a job of `work` seconds (slowdown 1 for a
  fast backend, 2 for one twice as slow); nothing else costs time (no HTTP,
  no dispatch decision, no event delivery).
- One central FCFS queue: jobs start in arrival order, and no server idles
  while a job waits (work-conserving).
- A job arriving when servers are free starts at once on the fastest free one
  (ties: the lowest index). Otherwise it waits at the head of the queue for
  the first server to free up (ties: the fastest), and starts then.
- Latency = finish - arrival.

This is a perfect late binder with zero overhead and exact knowledge of when
each server frees: the best any FCFS, size-blind dispatcher can do on the
trace. It is not a bound over every conceivable policy: one that knows job
sizes (shortest job first) or that holds a long job back for a fast server
rather than start it on a free slow one can beat it on some traces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TraceJob:
    arrival: float  # seconds from the start of the run
    work: float  # seconds on a server of slowdown 1


def ideal_latencies(jobs: Sequence[TraceJob], slowdowns: Sequence[float]) -> list[float]:
    """Each job's latency on the ideal central queue, in the order given."""
    if not slowdowns:
        raise ValueError("no servers")
    free_at = [-math.inf] * len(slowdowns)
    latencies = [0.0] * len(jobs)
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].arrival)  # stable: FCFS
    for i in order:
        job = jobs[i]
        idle = [s for s in range(len(free_at)) if free_at[s] <= job.arrival]
        if idle:
            server = min(idle, key=lambda s: (slowdowns[s], s))
            start = job.arrival
        else:
            server = min(range(len(free_at)), key=lambda s: (free_at[s], slowdowns[s], s))
            start = free_at[server]
        free_at[server] = start + job.work * slowdowns[server]
        latencies[i] = free_at[server] - job.arrival
    return latencies


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least `q` of all at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
