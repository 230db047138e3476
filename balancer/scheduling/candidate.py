"""A frozen view of one backend at the moment of a scheduling decision."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from balancer.backends.state import Backend
from balancer.config.model import ProbeSettings


@dataclass(frozen=True)
class Candidate:
    name: str
    order: int
    healthy: bool
    channel_up: bool
    fresh: bool
    load: int | None
    vram_free: int | None
    min_free_vram: int
    draining: bool = False


def candidates_from(
    backends: Iterable[Backend], now: float, probe: ProbeSettings
) -> list[Candidate]:
    """Snapshot the backends so the scheduling functions stay pure."""
    return [
        Candidate(
            name=b.name,
            order=b.order,
            healthy=b.healthy,
            channel_up=b.channel_id is not None,
            fresh=b.is_fresh(now, probe),
            load=b.load(),
            vram_free=b.snapshot.vram_free if b.snapshot else None,
            min_free_vram=b.settings.min_free_vram,
            draining=b.draining,
        )
        for b in backends
    ]
