"""`comfyui-balancer bench pick`: the cost of one routing decision.

In process: N backends, each up, its channel open, probed a moment ago and
holding a job, with some finished runs (so speed-aware scoring has data).
One decision is what the late binder does on every wake-up: snapshot every
backend (`candidates_from`), filter, score, pick. Both policies that bind
late are timed. The floor beside it is reading the same backend fields into
one tuple each, the least any snapshot can cost.

Each cell is the CPU time this thread spent per decision, then the wall
time, in the least interrupted of 100 windows: on a machine shared with other
work, wall time also counts the turns other processes took, while CPU time is
what a decision costs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from balancer.backends.state import Backend, LoadSnapshot
from balancer.bench.harness import table
from balancer.catalog.fit import Fit
from balancer.config.backend_settings import BackendSettings, ProbeSettings
from balancer.config.routing_settings import RoutingPolicy, RoutingSettings
from balancer.config.server_settings import LogSettings
from balancer.logs import configure_logging
from balancer.scheduling.candidate import candidates_from
from balancer.scheduling.policies import build_policy

GOALS_US = {64: 50.0, 512: 500.0}
NOW = 1000.0


def pool(count: int) -> list[Backend]:
    backends = []
    for i in range(count):
        backend = Backend(BackendSettings(name=f"gpu{i}", url=f"http://10.0.0.{i % 250}:8188"), i)
        snapshot = LoadSnapshot(NOW - 0.5, (f"r{i}",), (), 24 << 30, 20 << 30)
        backend.record_success(snapshot, ProbeSettings())
        backend.channel_id = f"channel-{i}"
        backend.record_push(i % 3, NOW - 0.2)
        for run in range(10):
            backend.record_run(1.0 + (i % 4) * 0.3 + run * 0.01)
        backends.append(backend)
    return backends


WINDOWS = 100


def per_call_us(call: Callable[[], object], seconds: float) -> str:
    """Mean CPU and wall time of one call, in microseconds, in the window
    (of `WINDOWS` in `seconds`) with the lowest wall time: the one other
    processes on the machine interrupted least, as timeit advises."""
    best: tuple[float, float] | None = None
    for _ in range(WINDOWS):
        calls, began, cpu = 0, time.perf_counter(), time.thread_time()
        while True:  # one batch at least: a window preempted at once still times calls
            for _ in range(10):
                call()
            calls += 10
            if (elapsed := time.perf_counter() - began) >= seconds / WINDOWS:
                break
        window = ((time.thread_time() - cpu) / calls, elapsed / calls)
        best = window if best is None or window[1] < best[1] else best
    assert best is not None
    return f"{1e6 * best[0]:.1f} / {1e6 * best[1]:.1f}"


def floor(backends: list[Backend]) -> list[tuple[object, ...]]:
    return [(b.name, b.order, b.healthy, b.channel_id, b.snapshot, b.pushed) for b in backends]


def decision(backends: list[Backend], policy: RoutingPolicy) -> Callable[[], object]:
    probe, fit, picker = ProbeSettings(), Fit(), build_policy(RoutingSettings(policy=policy))
    return lambda: picker.pick(candidates_from(backends, NOW, probe, lambda _name: fit))


def measure(sizes: list[int], seconds: float) -> str:
    rows = []
    for count in sizes:
        backends = pool(count)
        row: list[object] = [count, per_call_us(partial(floor, backends), seconds)]
        policies: tuple[RoutingPolicy, ...] = ("least_loaded", "expected_finish")
        for policy in policies:
            row.append(per_call_us(decision(backends, policy), seconds))
        goal = GOALS_US.get(count)
        row.append("" if goal is None else f"< {goal:g}")
        rows.append(row)
    headers = ["backends", "floor us", "least_loaded us", "expected_finish us", "goal us"]
    note = "\n(one decision: snapshot, filter, score, pick; mean CPU / wall microseconds)"
    return table(headers, rows) + note


def run_pick_bench(args: argparse.Namespace) -> int:
    configure_logging(LogSettings(level="error"))  # no backend_up line per backend
    print(measure(args.backends, args.seconds))
    return 0
