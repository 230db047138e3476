"""The tables of `bench affinity`: every run's rows, and with `--repeat` the
runs side by side (each policy against the least_loaded run of the same
round) and the run-to-run spread of least_loaded itself, the noise a
difference must exceed to count."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    trace: str
    policy: str
    jobs: int
    mean: float
    p99: float
    loads_per_100: float
    run: int = 1
    retried: int = 0  # submissions refused with 503 and sent again


def render(rows: Sequence[Row]) -> str:
    """One line per run of a policy on a trace, against least_loaded's run
    of the same trace in the same round."""
    ref = {(r.run, r.trace): r for r in rows if r.policy == "least_loaded"}
    lines = [
        "| run | trace | policy | jobs | mean latency | p99 latency | model loads / 100 jobs "
        "| mean vs least_loaded | loads vs least_loaded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = ref[(r.run, r.trace)]
        loads = f"{base.loads_per_100 / r.loads_per_100:.1f}x fewer" if r.loads_per_100 else "-"
        lines.append(
            f"| {r.run} | {r.trace} | {r.policy} | {r.jobs} | {r.mean:.2f} s | {r.p99:.2f} s "
            f"| {r.loads_per_100:.1f} | {base.mean / r.mean:.2f}x lower | {loads} |"
        )
    return "\n".join(lines)


def spread(values: Sequence[float]) -> float:
    """(max - min) / mean of a policy's figure across runs (0 for one run)."""
    return (max(values) - min(values)) / statistics.mean(values) if len(values) > 1 else 0.0


def summary(rows: Sequence[Row]) -> str:
    """Per trace and policy across runs: the mean of each figure, the range
    of its mean latency, and how it compares with least_loaded run by run.
    `worse beyond noise`: runs whose mean latency exceeds least_loaded's of
    the same round by more than least_loaded's own spread across runs."""
    lines = [
        "| trace | policy | runs | mean latency (avg, min-max) | p99 latency (avg) "
        "| model loads / 100 jobs (avg) | mean vs least_loaded per run | worse beyond noise |",
        "|---|---|---|---|---|---|---|---|",
    ]
    traces = list(dict.fromkeys(r.trace for r in rows))
    for trace in traces:
        ref = {r.run: r for r in rows if r.trace == trace and r.policy == "least_loaded"}
        noise = spread([r.mean for r in ref.values()])
        for policy in dict.fromkeys(r.policy for r in rows if r.trace == trace):
            mine = [r for r in rows if r.trace == trace and r.policy == policy]
            means = [r.mean for r in mine]
            ratios = [ref[r.run].mean / r.mean for r in mine]
            worse = sum(r.mean > ref[r.run].mean * (1 + noise) for r in mine)
            lines.append(
                f"| {trace} | {policy} | {len(mine)} "
                f"| {statistics.mean(means):.2f} s ({min(means):.2f}-{max(means):.2f}) "
                f"| {statistics.mean(r.p99 for r in mine):.2f} s "
                f"| {statistics.mean(r.loads_per_100 for r in mine):.1f} "
                f"| {', '.join(f'{x:.2f}x' for x in ratios)} "
                f"| {'-' if policy == 'least_loaded' else f'{worse} of {len(mine)}'} |"
            )
    return "\n".join(lines)


def noise_line(rows: Sequence[Row]) -> str:
    """least_loaded's own run-to-run spread of mean latency, per trace."""
    means: dict[str, list[float]] = {}
    for r in rows:
        if r.policy == "least_loaded":
            means.setdefault(r.trace, []).append(r.mean)
    parts = [f"{trace} {spread(values):.0%}" for trace, values in means.items()]
    return "noise (least_loaded's mean latency across runs, (max - min) / avg): " + ", ".join(parts)
