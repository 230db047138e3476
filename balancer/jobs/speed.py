"""Learns each backend's speed from the jobs it finishes (for expected_finish)."""

from __future__ import annotations

from balancer.backends.registry import Registry
from balancer.jobs.events import JobEvent


class SpeedObserver:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def job_event(self, event: JobEvent) -> None:
        if event.phase != "completed" or event.run_time is None or event.backend is None:
            return
        backend = self.registry.get(event.backend)
        if backend is not None:
            backend.record_run(event.run_time)
