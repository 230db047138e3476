"""Settings of the pool's backends: each backend's entry, how the prober watches
them, when the pool counts as ready, how often their catalogues are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from balancer.config.thresholds import VramThreshold


@dataclass(frozen=True)
class BackendSettings:
    name: str
    url: str
    primary: bool = False
    min_free_vram: int = 0
    # Drain (no new prompts) when used VRAM goes over `vram_limit`; take
    # prompts again only below `vram_resume` (default: 90 % of the limit).
    vram_limit: VramThreshold | None = None
    vram_resume: VramThreshold | None = None
    # Once drained and idle, POST /free {"unload_models": true} (once per drain).
    free_on_drain: bool = False
    # Drained by the operator in the file.
    drain: bool = False


@dataclass(frozen=True)
class ProbeSettings:
    """How the prober watches backends."""

    interval: float = 1.0
    # How often /system_stats (VRAM) is read; 0: with every probe.
    stats_interval: float = 0.0
    timeout: float = 2.0
    unhealthy_after: int = 3
    healthy_after: int = 1
    # Load data older than this makes a backend ineligible (unknown is not idle).
    stale_after: float = 5.0
    # While a backend's event channel is up, how often its /queue is still
    # read: its `status` pushes bring every queue change, and each round
    # pings it over the channel instead.
    channel_interval: float = 10.0
    # How often it is read while, besides, nothing says it holds anything:
    # its pushes and last read show an empty queue, nothing is on its way
    # to it, and the balancer follows no job there (VRAM is then read this
    # seldom too).
    idle_interval: float = 60.0


@dataclass(frozen=True)
class HealthSettings:
    """Readiness (`GET /balancer/ready`): 200 only with at least this many
    backends able to take prompts."""

    min_backends_up: int = 1


@dataclass(frozen=True)
class CatalogSettings:
    """Each backend's catalogue (node classes, combo values, model files)."""

    # Read again this often (also when a backend comes up or its channel
    # reconnects, and on POST /balancer/backends/{name}/refresh).
    refresh: float = 600.0
