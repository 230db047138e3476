"""A frozen view of one backend at the moment of a scheduling decision.

A decision snapshots every backend on each wake-up of the late binder, so
the snapshot is a NamedTuple (five times cheaper to build than a frozen
dataclass), built with `tuple.__new__` (its own `__new__` is one more Python
call per backend), and reads plain attributes the backend keeps up to date as they
change (its newest load reading, its unseen dispatches, its median run time
and speed) rather than working them out again, or calling a property, per
decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from balancer.backends.state import Backend
from balancer.catalog.fit import Fit
from balancer.config.backend_settings import ProbeSettings


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
    # Seconds of loading that evicting models here pushes onto later jobs.
    evicts: float = 0.0
    # The pool's run time of a job in seconds: the fastest backend's median
    # (any backend's before one has enough runs; the same in every candidate
    # of one decision): model_affinity weighs queues against loads with it.
    job_time: float = 1.0


def candidates_from(
    backends: Iterable[Backend], now: float, probe: ProbeSettings, fit: Callable[[str], Fit]
) -> list[Candidate]:
    """Snapshot the backends so the scheduling functions stay pure; `fit`
    says how each (by name) suits the prompt being placed."""
    backends = list(backends)
    fastest = min([b.speed for b in backends if b.speed], default=None)
    job_time = fastest or min([b.run_time for b in backends if b.run_time], default=None)
    job_time = job_time or UNKNOWN_RUN_TIME
    oldest = now - probe.stale_after
    make = tuple.__new__  # Candidate's fields in order, without its __new__ call per backend
    out = []
    for b in backends:
        newest, vram, suits, speed = b.newest, b.snapshot, fit(b.name), b.speed
        ratio = speed / fastest if speed and fastest else 1.0
        out.append(
            make(
                Candidate,
                (
                    b.name,
                    b.order,
                    b.healthy,
                    b.channel_id is not None,
                    newest is not None and newest[0] >= oldest,
                    None if newest is None else newest[1] + b.unseen,
                    None if vram is None else vram.vram_free,
                    b.settings.min_free_vram,
                    bool(b.drain_reasons),
                    ratio if ratio >= SAME_SPEED else 1.0,  # slowness(), inline
                    suits.capable,
                    suits.cold_load,
                    suits.evicts,
                    job_time,
                ),
            )
        )
    return out


# The run time of a job assumed until a backend has run enough to know it.
UNKNOWN_RUN_TIME = 1.0

# The spread of run times still taken as "equally fast" (noise, and mixed
# job sizes, vary them).
SAME_SPEED = 1.25


def slowness(speed: float | None, fastest: float | None) -> float:
    """How much slower a backend runs jobs than the fastest one: its `speed`
    (median run time once it has enough runs) over the fastest's. Unknown,
    or within SAME_SPEED of the fastest, counts as 1.0, so equal backends
    still tie (and rotate)."""
    if not speed or not fastest:
        return 1.0
    ratio = speed / fastest
    return ratio if ratio >= SAME_SPEED else 1.0
