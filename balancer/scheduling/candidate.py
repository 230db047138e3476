"""A frozen view of one backend at the moment of a scheduling decision.

A decision snapshots every backend on each wake-up of the late binder, so
the snapshot is a NamedTuple (five times cheaper to build than a frozen
dataclass) and reads values the backend keeps up to date as they change
(its newest load reading, its median run time) rather than working them
out again per decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from balancer.backends.state import Backend
from balancer.catalog.fit import Fit
from balancer.config.model import ProbeSettings


class Candidate(NamedTuple):
    name: str
    order: int
    healthy: bool
    channel_up: bool
    fresh: bool
    load: int | None
    vram_free: int | None
    min_free_vram: int
    draining: bool = False
    # How much slower this backend runs jobs than the fastest one (1.0: as
    # fast, or not known yet).
    slowness: float = 1.0
    # Has every node class and model the prompt uses (see balancer.catalog).
    capable: bool = True
    # Seconds of model loading the prompt would cost here (0: all resident).
    cold_load: float = 0.0
    # Median recent run time in seconds, None until it ran a job.
    run_time: float | None = None


def candidates_from(
    backends: Iterable[Backend], now: float, probe: ProbeSettings, fit: Callable[[str], Fit]
) -> list[Candidate]:
    """Snapshot the backends so the scheduling functions stay pure; `fit`
    says how each (by name) suits the prompt being placed."""
    backends = list(backends)
    speed = relative_slowness(backends)
    oldest = now - probe.stale_after
    out = []
    for b in backends:
        name, newest, snapshot = b.name, b.newest, b.snapshot
        suits = fit(name)
        load = None if newest is None else newest[1] + b.unseen
        out.append(
            Candidate(
                name,
                b.order,
                b.healthy,
                b.channel_id is not None,
                newest is not None and newest[0] >= oldest,
                load,
                None if snapshot is None else snapshot.vram_free,
                b.settings.min_free_vram,
                bool(b.drain_reasons),
                speed.get(name, 1.0),
                suits.capable,
                suits.cold_load,
                b.run_time,
            )
        )
    return out


# Runs observed before a backend's speed counts, and the spread of run times
# still taken as "equally fast" (noise, and mixed job sizes, vary them).
MIN_RUNS = 3
SAME_SPEED = 1.25


def relative_slowness(backends: list[Backend]) -> dict[str, float]:
    """Observed run time over the fastest backend's, for backends with enough
    runs; within SAME_SPEED of the fastest counts as 1.0, so equal backends
    still tie (and rotate)."""
    known = {b.name: b.run_time for b in backends if b.runs >= MIN_RUNS and b.run_time}
    if not known:
        return {}
    fastest = min(known.values())
    ratios = {name: time / fastest for name, time in known.items()}
    return {name: ratio if ratio >= SAME_SPEED else 1.0 for name, ratio in ratios.items()}
