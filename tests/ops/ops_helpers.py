"""Helpers for the ops tests: wait for job events, read /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from support import Pool

from balancer.jobs.events import JobEvent


class EventWaiter:
    """Collects job events; waits (on an asyncio.Event, not a sleep) for some."""

    def __init__(self, pool: Pool) -> None:
        self.events: list[JobEvent] = []
        self._changed = asyncio.Event()
        pool.balancer.events.subscribe(self)

    async def job_event(self, event: JobEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def count(self, phase: str) -> int:
        return sum(1 for e in self.events if e.phase == phase)

    async def until(self, phase: str, count: int, timeout: float = 10.0) -> None:
        async def wait() -> None:
            while self.count(phase) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def scrape(pool: Pool) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    resp = await pool.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))
