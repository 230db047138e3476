"""Settings of how prompts are routed: the balancer-side queue, the policy that
picks a backend, and failover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RoutingPolicy = Literal["least_loaded", "expected_finish", "model_affinity", "round_robin"]


@dataclass(frozen=True)
class RoutingSettings:
    """The balancer-side queue (late binding) and failover."""

    # Prompts a backend may hold beyond the one it runs; more wait in the
    # balancer. None = unbounded (send every prompt at once).
    max_pending_per_backend: int | None = 1
    # Prompts waiting in the balancer; beyond it POST /prompt gets 429.
    max_queue: int = 10_000
    # Dispatches of one prompt (first run plus failovers) before it fails.
    max_attempts: int = 3
    # Take a job pending behind a running one back to an idle backend.
    work_stealing: bool = True
    # How a backend is chosen (balancer.scheduling.policies): `least_loaded`
    # binds late to the least-loaded backend with room; `round_robin` sends
    # every prompt at once to the next backend in turn (a baseline; it ignores
    # max_pending_per_backend).
    policy: RoutingPolicy = "least_loaded"
    # How long the jobs of a backend that stopped answering (timeouts, not a
    # refused or reset connection) are left to it before they are sent
    # elsewhere; a backend back in time keeps them. Seconds.
    failover_grace: float = 60.0
    # model_affinity: the first guess of a model's load time (seconds), until
    # cold and warm runs of finished jobs teach the real one per backend.
    model_load_estimate: float = 10.0
    # Models a backend is taken to hold in VRAM: those of its most recent
    # jobs, at most this many (the least recently used forgotten first).
    resident_models: int = 2
    # model_affinity: waiting jobs the late binder looks through for one to
    # bind while those before it wait for a backend holding their models
    # (each waits at most what that saves). None: 16; 0: no job waits.
    warm_lookahead: int | None = None
